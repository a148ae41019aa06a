//! Word banks for plausible sim text, in English and German.
//!
//! Rules: every bank has the same entries in both languages, so a seed picks the "same"
//! value whatever the locale; values are everyday productivity-app content.

/// Which language sim writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    De,
}

impl Lang {
    pub(crate) fn from_locale(locale: &str) -> Self {
        if locale.trim().to_ascii_lowercase().starts_with("de") {
            Self::De
        } else {
            Self::En
        }
    }

    /// The bank in this language.
    pub(crate) fn bank(self, bank: &Bank) -> &'static [&'static str] {
        match self {
            Self::En => bank.en,
            Self::De => bank.de,
        }
    }
}

/// One list of values per language.
pub(crate) struct Bank {
    pub(crate) en: &'static [&'static str],
    pub(crate) de: &'static [&'static str],
}

pub(crate) const TASK_TITLES: Bank = Bank {
    en: &[
        "Buy groceries",
        "Call the dentist",
        "Prepare the quarterly report",
        "Water the plants",
        "Book train tickets",
        "Reply to Anna's email",
        "Plan the weekend trip",
        "Renew the gym membership",
        "Tidy up the basement",
        "Read chapter 3",
    ],
    de: &[
        "Einkaufen gehen",
        "Zahnarzt anrufen",
        "Quartalsbericht vorbereiten",
        "Pflanzen gießen",
        "Zugtickets buchen",
        "Annas E-Mail beantworten",
        "Wochenendausflug planen",
        "Fitnessstudio-Vertrag verlängern",
        "Keller aufräumen",
        "Kapitel 3 lesen",
    ],
};

pub(crate) const NOTE_TITLES: Bank = Bank {
    en: &[
        "Thoughts on the week",
        "Meeting notes",
        "Ideas for the garden",
        "Recipe to try",
        "Books to read",
        "Travel checklist",
    ],
    de: &[
        "Gedanken zur Woche",
        "Besprechungsnotizen",
        "Ideen für den Garten",
        "Rezept zum Ausprobieren",
        "Bücher, die ich lesen will",
        "Reise-Checkliste",
    ],
};

pub(crate) const EVENT_TITLES: Bank = Bank {
    en: &[
        "Team meeting",
        "Dentist appointment",
        "Dinner with friends",
        "Yoga class",
        "Parent-teacher meeting",
        "Call with the landlord",
    ],
    de: &[
        "Teambesprechung",
        "Zahnarzttermin",
        "Abendessen mit Freunden",
        "Yogakurs",
        "Elternabend",
        "Telefonat mit dem Vermieter",
    ],
};

pub(crate) const HABIT_NAMES: Bank = Bank {
    en: &[
        "Drink water",
        "Morning run",
        "Meditate 10 minutes",
        "Read before bed",
        "No phone after 9 pm",
    ],
    de: &[
        "Wasser trinken",
        "Morgens joggen",
        "10 Minuten meditieren",
        "Vor dem Schlafen lesen",
        "Kein Handy nach 21 Uhr",
    ],
};

pub(crate) const GOAL_NAMES: Bank = Bank {
    en: &[
        "Run a half marathon",
        "Save for the summer holiday",
        "Learn basic Spanish",
        "Finish the photo album",
    ],
    de: &[
        "Einen Halbmarathon laufen",
        "Für den Sommerurlaub sparen",
        "Spanisch-Grundlagen lernen",
        "Das Fotoalbum fertigstellen",
    ],
};

pub(crate) const PERSON_NAMES: Bank = Bank {
    en: &[
        "Emma Johnson",
        "Liam Brown",
        "Olivia Davis",
        "Noah Wilson",
        "Ava Miller",
    ],
    de: &[
        "Anna Schmidt",
        "Lukas Weber",
        "Mia Fischer",
        "Jonas Becker",
        "Lena Hoffmann",
    ],
};

pub(crate) const SENTENCES: Bank = Bank {
    en: &[
        "Felt productive this morning; the new routine helps.",
        "Need to remember to bring the documents tomorrow.",
        "Talked with Tom about the project timeline.",
        "The weather was great, so I went for a walk at lunch.",
        "Ideas: shorter meetings, more focus time.",
        "A bit tired today, but the evening was relaxed.",
    ],
    de: &[
        "Heute Morgen war ich produktiv; die neue Routine hilft.",
        "Morgen unbedingt die Unterlagen mitnehmen.",
        "Mit Tom über den Zeitplan des Projekts gesprochen.",
        "Schönes Wetter, mittags bin ich spazieren gegangen.",
        "Ideen: kürzere Meetings, mehr Fokuszeit.",
        "Heute etwas müde, aber der Abend war entspannt.",
    ],
};

pub(crate) const PLACES: Bank = Bank {
    en: &["Office", "Home", "City library", "Café Central", "Gym"],
    de: &[
        "Büro",
        "Zuhause",
        "Stadtbibliothek",
        "Café am Markt",
        "Fitnessstudio",
    ],
};

pub(crate) const MOODS: Bank = Bank {
    en: &["calm", "tired", "happy", "stressed", "content"],
    de: &["ruhig", "müde", "fröhlich", "gestresst", "zufrieden"],
};

pub(crate) const TAGS: Bank = Bank {
    en: &["work", "home", "health", "errands", "family"],
    de: &["arbeit", "zuhause", "gesundheit", "erledigungen", "familie"],
};

pub(crate) const QUERIES: Bank = Bank {
    en: &["meeting", "groceries", "project", "birthday", "doctor"],
    de: &["Meeting", "Einkauf", "Projekt", "Geburtstag", "Arzt"],
};

pub(crate) const WORDS: Bank = Bank {
    en: &["quick", "weekly", "family", "garden", "budget", "review"],
    de: &[
        "schnell",
        "wöchentlich",
        "Familie",
        "Garten",
        "Budget",
        "Rückblick",
    ],
};

/// Rating notes by rating 1..=5 (index 0 = rating 1).
pub(crate) const RATING_NOTES: Bank = Bank {
    en: &[
        "Barely usable today; errors kept happening.",
        "Frustrating, several things did not work.",
        "Okay, but it sometimes gets in my way.",
        "Useful; small things could be smoother.",
        "Works great, I use it every day.",
    ],
    de: &[
        "Heute kaum nutzbar, ständig Fehler.",
        "Frustrierend, einiges hat nicht funktioniert.",
        "Okay, aber manchmal umständlich.",
        "Nützlich, Kleinigkeiten könnten flüssiger sein.",
        "Funktioniert super, nutze ich täglich.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_are_parallel_and_non_empty() {
        for bank in [
            &TASK_TITLES,
            &NOTE_TITLES,
            &EVENT_TITLES,
            &HABIT_NAMES,
            &GOAL_NAMES,
            &PERSON_NAMES,
            &SENTENCES,
            &PLACES,
            &MOODS,
            &TAGS,
            &QUERIES,
            &WORDS,
            &RATING_NOTES,
        ] {
            assert!(!bank.en.is_empty());
            assert_eq!(bank.en.len(), bank.de.len());
        }
        assert_eq!(RATING_NOTES.en.len(), 5);
        assert_eq!(Lang::from_locale("de-DE"), Lang::De);
        assert_eq!(Lang::from_locale("en"), Lang::En);
        assert_eq!(Lang::from_locale(""), Lang::En);
    }
}

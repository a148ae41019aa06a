//! The prompts of a persona's day, in the persona's language: German by default,
//! English for `en*` locales.
//!
//! Rules: the main prompt carries today's date, the persona's favourite modules (by
//! weight) and a short digest of its recent days; the rating prompt carries a summary
//! of today's actions and the modules to rate in the (random) order given, and asks for
//! strict JSON. Nothing here is secret or personal beyond the persona's own data.
//! [`shared_system`] is the same for every persona of a language and holds nothing
//! volatile: it is part of the cached prompt prefix.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use types::personas::{ActionResult, ActionRow, PersonaRatingsResponse};

use types::text::truncate_chars;

/// Most action lines in the rating prompt.
const MAX_SUMMARY_LINES: usize = 60;
/// Most characters of the recent-days digest.
const MAX_DIGEST: usize = 1200;

/// The language of a persona's prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// German (default).
    De,
    /// English.
    En,
}

impl Lang {
    /// `en`, `en-US`, `EN_gb` → English; everything else → German.
    pub fn from_locale(locale: &str) -> Self {
        if locale.trim().to_ascii_lowercase().starts_with("en") {
            Self::En
        } else {
            Self::De
        }
    }
}

/// Module names ordered by weight, heaviest first.
fn favourite_modules(mix: &BTreeMap<String, f64>) -> Vec<&str> {
    let mut v: Vec<(&String, &f64)> = mix.iter().filter(|(_, w)| **w > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(m, _)| m.as_str()).collect()
}

/// A short digest of the persona's recent days: what it did (tools used, how
/// often, how many failed) and how it rated the modules; or a "first day" line.
pub fn digest(
    lang: Lang,
    ratings: Option<&PersonaRatingsResponse>,
    actions: Option<&types::personas::RecentActionsResponse>,
) -> String {
    let done = recent_actions_line(lang, actions);
    let rated = ratings_digest(lang, ratings);
    match done {
        Some(line) => truncate_chars(&format!("{line}\n{rated}"), MAX_DIGEST),
        None => rated,
    }
}

/// "Recently you used: todo_create (3×), notes_search (1×, 1 failed)".
fn recent_actions_line(
    lang: Lang,
    actions: Option<&types::personas::RecentActionsResponse>,
) -> Option<String> {
    let actions = actions.map(|a| &a.actions).filter(|a| !a.is_empty())?;
    let mut counts: Vec<(&str, usize, usize)> = Vec::new();
    for a in actions {
        let failed = usize::from(a.result == types::personas::ActionResult::Error);
        match counts.iter_mut().find(|(t, _, _)| *t == a.tool_name) {
            Some(c) => {
                c.1 += 1;
                c.2 += failed;
            }
            None => counts.push((&a.tool_name, 1, failed)),
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(tool, n, failed)| match (lang, failed) {
            (_, 0) => format!("{tool} ({n}×)"),
            (Lang::De, f) => format!("{tool} ({n}×, {f} mit Fehler)"),
            (Lang::En, f) => format!("{tool} ({n}×, {f} failed)"),
        })
        .collect();
    Some(match lang {
        Lang::De => format!("Zuletzt hast du in der App benutzt: {}.", parts.join(", ")),
        Lang::En => format!("Recently you used in the app: {}.", parts.join(", ")),
    })
}

/// How the persona rated the modules recently, or a "not rated yet" line.
fn ratings_digest(lang: Lang, ratings: Option<&PersonaRatingsResponse>) -> String {
    let modules = ratings
        .map(|r| {
            r.modules
                .iter()
                .filter(|m| m.module != types::personas::PARSE_FAILURE_MODULE)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if modules.is_empty() {
        return match lang {
            Lang::De => "Du hast die App bisher noch nicht bewertet.".to_owned(),
            Lang::En => "You have not rated the app before.".to_owned(),
        };
    }
    let mut lines = vec![match lang {
        Lang::De => "So hast du die Module an deinen letzten Tagen bewertet:".to_owned(),
        Lang::En => "How you rated the modules on your recent days:".to_owned(),
    }];
    for m in modules {
        let avg = m
            .average
            .map_or_else(|| "–".to_owned(), |a| format!("{a:.1}"));
        let last_note = m
            .last
            .iter()
            .find_map(|n| n.notes.as_deref())
            .map(|n| format!(" — „{}“", truncate_chars(n, 120)))
            .unwrap_or_default();
        lines.push(match lang {
            Lang::De => format!(
                "- {}: Ø {avg} ({} Bewertungen){last_note}",
                m.module, m.count
            ),
            Lang::En => format!("- {}: avg {avg} ({} ratings){last_note}", m.module, m.count),
        });
    }
    truncate_chars(&lines.join("\n"), MAX_DIGEST)
}

/// The stable rules of a persona day, sent before the persona's own system prompt (one
/// text per language; no dates, ids or names, so the prompt cache can share it).
pub fn shared_system(lang: Lang) -> &'static str {
    match lang {
        Lang::De => {
            "Du bist ein echter Mensch, der die persönliche Mana-App benutzt (Aufgaben,              Notizen, Tagebuch, Kalender, Kontakte, Ziele, Gewohnheiten, Stimmung, Missionen).              Du sprichst mit der App nur über die bereitgestellten Werkzeuge; jedes Werkzeug              legt echte Einträge an, ändert oder sucht sie. Regeln:
             - Bleib immer in deiner Rolle, wie sie unten beschrieben ist. Sag nie, dass du              eine KI oder ein Sprachmodell bist.
             - Benutze die Werkzeuge so, wie du es im Alltag tun würdest: konkrete,              glaubwürdige Inhalte, keine Platzhalter.
             - Wenn ein Werkzeug einen Fehler meldet, reagiere wie ein Mensch: versuch es              anders oder lass es.
             - Schreib auf Deutsch."
        }
        Lang::En => {
            "You are a real person using the personal Mana app (todos, notes, journal,              calendar, contacts, goals, habits, mood, missions). You talk to the app only              through the tools provided; every tool creates, changes or finds real entries.              Rules:
             - Always stay in the character described below. Never say you are an AI or a              language model.
             - Use the tools the way you would in everyday life: concrete, believable              content, no placeholders.
             - When a tool reports an error, react like a person: try another way or let              it be.
             - Write in English."
        }
    }
}

/// The main turn's user prompt.
pub fn day_prompt(
    lang: Lang,
    now: DateTime<Utc>,
    module_mix: &BTreeMap<String, f64>,
    digest: &str,
) -> String {
    let date = now.format("%Y-%m-%d");
    let favourites = favourite_modules(module_mix).join(", ");
    match lang {
        Lang::De => format!(
            "Heute ist {date}. Du nutzt deine persönliche Mana-App über die bereitgestellten \
             Werkzeuge. Lebe einen Tag deines Lebens mit der App: Was würdest du heute wirklich \
             damit tun? Benutze die Werkzeuge so, wie du es im Alltag tun würdest (etwa 3 bis 8 \
             Aktionen), und bleib dabei ganz in deiner Rolle.\n\
             Module, die zu dir passen: {favourites}.\n\n{digest}\n\n\
             Wenn du fertig bist, beschreibe in 1–2 Sätzen, was du heute gemacht hast."
        ),
        Lang::En => format!(
            "Today is {date}. You use your personal Mana app through the tools provided. Live \
             one day of your life with the app: what would you really do with it today? Use the \
             tools the way you would in everyday life (about 3 to 8 actions), and stay fully in \
             character.\nModules that suit you: {favourites}.\n\n{digest}\n\n\
             When you are done, describe in 1–2 sentences what you did today."
        ),
    }
}

/// One line per action (capped), for the rating prompt.
pub fn action_summary(lang: Lang, actions: &[ActionRow]) -> String {
    let mut lines: Vec<String> = actions
        .iter()
        .take(MAX_SUMMARY_LINES)
        .map(|a| {
            let time = a
                .created_at
                .map(|t| t.format("%H:%M ").to_string())
                .unwrap_or_default();
            let outcome = match (a.result, lang) {
                (ActionResult::Ok, Lang::De) => "ok".to_owned(),
                (ActionResult::Ok, Lang::En) => "ok".to_owned(),
                (ActionResult::Error, Lang::De) => format!(
                    "Fehler: {}",
                    truncate_chars(a.error_message.as_deref().unwrap_or("?"), 160)
                ),
                (ActionResult::Error, Lang::En) => format!(
                    "error: {}",
                    truncate_chars(a.error_message.as_deref().unwrap_or("?"), 160)
                ),
            };
            format!("- {time}{} ({}): {outcome}", a.tool_name, a.module)
        })
        .collect();
    if actions.len() > MAX_SUMMARY_LINES {
        lines.push(format!("- … (+{})", actions.len() - MAX_SUMMARY_LINES));
    }
    lines.join("\n")
}

/// The rating turn's user prompt; `modules` are listed in the order given.
pub fn rating_prompt(
    lang: Lang,
    actions: &[ActionRow],
    day_text: Option<&str>,
    modules: &[String],
) -> String {
    let summary = action_summary(lang, actions);
    let list = modules.join(", ");
    let example = modules.first().map_or("todo", String::as_str);
    let closing = day_text
        .map(|t| truncate_chars(t.trim(), 400))
        .filter(|t| !t.is_empty());
    match lang {
        Lang::De => format!(
            "Das hast du heute in der App gemacht:\n{summary}\n{}\n\
             Bitte bewerte jedes Modul, das du heute benutzt hast ({list}), auf einer Skala von \
             1 bis 5 (1 = frustrierend, 5 = hilft mir wirklich), mit einer kurzen Begründung in \
             deinen eigenen Worten. Antworte NUR mit JSON in genau diesem Format:\n\
             {{\"ratings\":[{{\"module\":\"{example}\",\"rating\":4,\"notes\":\"kurze Begründung\"}}]}}\n\
             Kein Text außerhalb des JSON.",
            closing
                .map(|t| format!("Dein Fazit: {t}\n"))
                .unwrap_or_default()
        ),
        Lang::En => format!(
            "This is what you did in the app today:\n{summary}\n{}\n\
             Please rate each module you used today ({list}) on a scale from 1 to 5 (1 = \
             frustrating, 5 = really helps me), with a short reason in your own words. Answer \
             ONLY with JSON in exactly this format:\n\
             {{\"ratings\":[{{\"module\":\"{example}\",\"rating\":4,\"notes\":\"short reason\"}}]}}\n\
             No text outside the JSON.",
            closing
                .map(|t| format!("Your summary: {t}\n"))
                .unwrap_or_default()
        ),
    }
}

/// Whether a tool-less answer reads like a refusal or broken character.
pub fn looks_like_refusal(text: &str) -> bool {
    let t = text.to_lowercase();
    [
        "i can't",
        "i cannot",
        "i'm sorry",
        "i am sorry",
        "as an ai",
        "as a language model",
        "i'm not able",
        "ich kann nicht",
        "ich kann dir nicht",
        "es tut mir leid",
        "als ki",
        "als sprachmodell",
    ]
    .iter()
    .any(|p| t.contains(p))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use types::personas::{ModuleRatings, RatingNote};

    use super::*;

    #[test]
    fn locale_picks_the_language() {
        assert_eq!(Lang::from_locale("de"), Lang::De);
        assert_eq!(Lang::from_locale(""), Lang::De);
        assert_eq!(Lang::from_locale("fr-FR"), Lang::De);
        assert_eq!(Lang::from_locale("en"), Lang::En);
        assert_eq!(Lang::from_locale("en-GB"), Lang::En);
    }

    #[test]
    fn day_prompt_names_date_modules_by_weight_and_digest() {
        let mix = BTreeMap::from([
            ("notes".to_owned(), 0.2),
            ("todo".to_owned(), 0.5),
            ("mood".to_owned(), 0.0),
        ]);
        let now = Utc.with_ymd_and_hms(2026, 11, 18, 9, 0, 0).unwrap();
        let de = day_prompt(Lang::De, now, &mix, "DIGEST");
        assert!(de.contains("2026-11-18") && de.contains("todo, notes") && de.contains("DIGEST"));
        assert!(!de.contains("mood"));
        assert!(de.contains("Lebe einen Tag"));
        assert!(day_prompt(Lang::En, now, &mix, "").contains("Live one day"));
    }

    #[test]
    fn digest_summarises_ratings_and_skips_parse_rows() {
        let r = PersonaRatingsResponse {
            persona_id: uuid::Uuid::nil(),
            modules: vec![
                ModuleRatings {
                    module: "todo".into(),
                    count: 3,
                    average: Some(3.666),
                    last: vec![RatingNote {
                        tick_id: "t".into(),
                        rating: Some(4),
                        notes: Some("schnell".into()),
                        created_at: Utc::now(),
                    }],
                },
                ModuleRatings {
                    module: "__parse".into(),
                    count: 1,
                    average: None,
                    last: vec![],
                },
            ],
        };
        let d = digest(Lang::De, Some(&r), None);
        assert!(
            d.contains("todo: Ø 3.7 (3 Bewertungen)") && d.contains("schnell"),
            "{d}"
        );
        assert!(!d.contains("__parse"));
        assert!(digest(Lang::En, None, None).contains("not rated"));
        let actions = types::personas::RecentActionsResponse {
            persona_id: uuid::Uuid::nil(),
            actions: ["todo_create", "todo_create", "notes_search"]
                .iter()
                .enumerate()
                .map(|(i, t)| types::personas::RecentAction {
                    id: format!("a{i}"),
                    tick_id: "t".into(),
                    tool_name: (*t).into(),
                    module: "m".into(),
                    result: if i == 2 {
                        types::personas::ActionResult::Error
                    } else {
                        types::personas::ActionResult::Ok
                    },
                    error_message: None,
                    latency_ms: None,
                    created_at: chrono::Utc::now(),
                })
                .collect(),
        };
        let d = digest(Lang::En, None, Some(&actions));
        assert!(d.contains("todo_create (2×)"), "{d}");
        assert!(d.contains("notes_search (1×, 1 failed)"), "{d}");
        assert!(d.contains("not rated"), "{d}");
    }

    #[test]
    fn rating_prompt_lists_modules_in_the_given_order_and_todays_actions() {
        let actions = vec![ActionRow {
            tool_name: "notes_create".into(),
            module: "notes".into(),
            input: None,
            input_hash: None,
            result: ActionResult::Error,
            error_message: Some("title missing".into()),
            latency_ms: Some(3),
            created_at: None,
        }];
        let p = rating_prompt(
            Lang::En,
            &actions,
            Some("A calm day."),
            &["notes".into(), "todo".into()],
        );
        assert!(p.contains("(notes, todo)"));
        assert!(p.contains("notes_create (notes): error: title missing"));
        assert!(p.contains("A calm day."));
        assert!(p.contains("\"ratings\""));
    }

    #[test]
    fn refusals_are_recognised() {
        assert!(looks_like_refusal("I'm sorry, but I can't role-play this."));
        assert!(looks_like_refusal("Als KI habe ich keinen Alltag."));
        assert!(!looks_like_refusal(
            "Heute habe ich meine Einkäufe geplant."
        ));
    }
}

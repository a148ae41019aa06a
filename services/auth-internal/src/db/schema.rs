//! Diesel table definitions, written by hand to match `migrations/` (diesel_cli
//! needs libpq, which this build avoids).

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        kind -> Text,
        display_name -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    personas (user_id) {
        user_id -> Uuid,
        slug -> Text,
        archetype -> Text,
        system_prompt -> Text,
        module_mix -> Jsonb,
        tick_cadence -> Text,
        locale -> Text,
        paused -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_active_at -> Nullable<Timestamptz>,
        lease_owner -> Nullable<Text>,
        lease_token -> Nullable<Uuid>,
        lease_expires_at -> Nullable<Timestamptz>,
        attempt -> Int4,
        consecutive_failures -> Int4,
        retry_after -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    persona_actions (id) {
        id -> Text,
        persona_id -> Uuid,
        tick_id -> Text,
        tool_name -> Text,
        module -> Text,
        input -> Nullable<Jsonb>,
        input_hash -> Nullable<Text>,
        result -> Text,
        error_message -> Nullable<Text>,
        latency_ms -> Nullable<Int4>,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    persona_feedback (id) {
        id -> Text,
        persona_id -> Uuid,
        tick_id -> Text,
        module -> Text,
        rating -> Nullable<Int2>,
        notes -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(personas -> users (user_id));
diesel::joinable!(persona_actions -> personas (persona_id));
diesel::joinable!(persona_feedback -> personas (persona_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    personas,
    persona_actions,
    persona_feedback,
    sync_changes,
    records
);

diesel::table! {
    sync_changes (id) {
        id -> Int8,
        user_id -> Uuid,
        app_id -> Text,
        table_name -> Text,
        record_id -> Text,
        op -> Text,
        data -> Nullable<Jsonb>,
        field_timestamps -> Jsonb,
        stamp -> Text,
        client_id -> Text,
        origin -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    records (user_id, app_id, table_name, record_id) {
        user_id -> Uuid,
        app_id -> Text,
        table_name -> Text,
        record_id -> Text,
        data -> Jsonb,
        field_timestamps -> Jsonb,
        created_stamp -> Nullable<Text>,
        tombstone -> Nullable<Text>,
        deleted -> Bool,
        last_change_id -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    mission_schedule (user_id, mission_id) {
        user_id -> Uuid,
        mission_id -> Text,
        active -> Bool,
        next_run_at -> Nullable<Timestamptz>,
        lease_owner -> Nullable<Text>,
        lease_token -> Nullable<Uuid>,
        lease_expires_at -> Nullable<Timestamptz>,
        leased_slot -> Nullable<Timestamptz>,
        retry_after -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    mission_token_usage (user_id, day) {
        user_id -> Uuid,
        day -> Date,
        tokens -> Int8,
    }
}

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

diesel::table! {
    persona_runs (id) {
        id -> Text,
        persona_id -> Uuid,
        tick_id -> Text,
        revision -> Int4,
        worker -> Text,
        provider -> Text,
        model -> Text,
        app_version -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        error -> Nullable<Text>,
        error_class -> Nullable<Text>,
        turns -> Int4,
        tool_calls -> Int4,
        tool_errors -> Int4,
        tokens_input -> Int8,
        tokens_output -> Int8,
        tokens_cache_read -> Int8,
        tokens_cache_write -> Int8,
        first_prompt_tokens -> Nullable<Int8>,
        transcript -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        has_transcript -> Bool,
    }
}

diesel::joinable!(personas -> users (user_id));
diesel::joinable!(persona_runs -> personas (persona_id));
diesel::joinable!(persona_actions -> personas (persona_id));
diesel::joinable!(persona_feedback -> personas (persona_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    personas,
    persona_actions,
    persona_feedback,
    persona_runs,
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

diesel::table! {
    oauth_clients (id) {
        id -> Text,
        client_name -> Text,
        redirect_uris -> Array<Text>,
        client_uri -> Nullable<Text>,
        registered_ip -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    oauth_grants (id) {
        id -> Uuid,
        user_id -> Uuid,
        client_id -> Text,
        scope -> Text,
        resource -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_codes (code_hash) {
        code_hash -> Bytea,
        client_id -> Text,
        user_id -> Uuid,
        redirect_uri -> Text,
        code_challenge -> Text,
        scope -> Text,
        resource -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        grant_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    oauth_refresh_tokens (token_hash) {
        token_hash -> Bytea,
        grant_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    personal_access_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        scope -> Text,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(oauth_grants -> oauth_clients (client_id));
diesel::joinable!(oauth_refresh_tokens -> oauth_grants (grant_id));
diesel::allow_tables_to_appear_in_same_query!(
    oauth_clients,
    oauth_grants,
    oauth_refresh_tokens,
    users
);

diesel::table! {
    console_sessions (id_hash) {
        id_hash -> Bytea,
        user_id -> Uuid,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(console_sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(console_sessions, users);

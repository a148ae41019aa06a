//! Every migration's `down.sql` reverses its `up.sql`: for each migration in
//! order, up → snapshot → down → snapshot equals the one before up → up →
//! snapshot equals the first. The snapshot is a catalogue query (tables,
//! columns, types, defaults, compression, constraints, indexes, functions,
//! triggers, enum labels, sequences), not `pg_dump` text.

use auth_internal::db::MIGRATIONS;
use diesel::{Connection, QueryableByName, RunQueryDsl, sql_types::Text};
use diesel_async::{AsyncPgConnection, async_connection_wrapper::AsyncConnectionWrapper};
use diesel_migrations::MigrationHarness;
use test_support::TestDb;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

const CATALOGUE: &str = r"
SELECT 'column ' || c.table_name || '.' || c.column_name || ' ' || c.udt_name
       || ' null=' || c.is_nullable || ' default=' || coalesce(c.column_default, '-') AS line
  FROM information_schema.columns c
 WHERE c.table_schema = 'public' AND c.table_name <> '__diesel_schema_migrations'
UNION ALL
SELECT 'constraint ' || t.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public' AND t.relname <> '__diesel_schema_migrations'
UNION ALL
SELECT 'index ' || i.tablename || ' ' || i.indexdef
  FROM pg_indexes i
 WHERE i.schemaname = 'public' AND i.tablename <> '__diesel_schema_migrations'
UNION ALL
SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
       || md5(pg_get_functiondef(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
UNION ALL
SELECT 'trigger ' || c.relname || ' ' || pg_get_triggerdef(g.oid)
  FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND NOT g.tgisinternal
UNION ALL
SELECT 'enum ' || t.typname || ' ' || e.enumsortorder::text || ' ' || e.enumlabel
  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
  JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public'
UNION ALL
SELECT 'compression ' || c.relname || '.' || a.attname || ' ' || a.attcompression::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped AND a.attcompression <> ''
UNION ALL
SELECT 'relation ' || c.relkind::text || ' ' || c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relname NOT LIKE '__diesel_schema_migrations%'
ORDER BY 1
";

fn snapshot(conn: &mut SyncConn) -> Vec<String> {
    diesel::sql_query(CATALOGUE)
        .load::<Line>(conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_down_reverses_its_up() {
    let db = TestDb::empty().await;
    let url = db.url().to_owned();
    let steps = tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::establish(&url).unwrap();
        let mut steps = 0;
        loop {
            let before = snapshot(&mut conn);
            if !conn.has_pending_migration(MIGRATIONS).unwrap() {
                break;
            }
            let name = conn.run_next_migration(MIGRATIONS).unwrap().to_string();
            let after_up = snapshot(&mut conn);
            assert_ne!(before, after_up, "{name}: up.sql changed nothing");
            conn.revert_last_migration(MIGRATIONS).unwrap();
            assert_eq!(
                before,
                snapshot(&mut conn),
                "{name}: down.sql leaves a different schema"
            );
            conn.run_next_migration(MIGRATIONS).unwrap();
            assert_eq!(
                after_up,
                snapshot(&mut conn),
                "{name}: up after down differs"
            );
            steps += 1;
        }
        steps
    })
    .await
    .unwrap();
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("up.sql").is_file()))
        .count();
    assert_eq!(steps, on_disk, "every migration folder was exercised");
}

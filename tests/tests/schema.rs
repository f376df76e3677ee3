//! The two engines' migrations are kept in step: the same migration versions, and after them the same
//! tables, columns (type, nullability, primary key) and indexes (columns, unique, partial) on SQLite and
//! on a real PostgreSQL (the suite's own cluster).

use std::collections::BTreeSet;

use sqlx::Row;

type Schema = (BTreeSet<String>, BTreeSet<String>, Vec<i64>);

fn migrations(engine: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(sts_tests::repo_root().join("migrations").join(engine))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    names.sort();
    names
}

/// SQLite's declared types, as PostgreSQL names them.
fn normal_type(t: &str) -> String {
    match t.to_ascii_uppercase().as_str() {
        "INTEGER" | "BIGINT" | "INT8" => "bigint".into(),
        "TEXT" => "text".into(),
        other => other.to_ascii_lowercase(),
    }
}

async fn sqlite_schema(pool: &sqlx::AnyPool) -> Schema {
    let mut columns = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for t in &tables {
        for r in sqlx::query("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
            .bind(t)
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let (name, ty, notnull, pk): (String, String, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            columns.insert(format!(
                "{t}.{name} {} {}{}",
                normal_type(&ty),
                if notnull == 1 || pk > 0 {
                    "not null"
                } else {
                    "null"
                },
                if pk > 0 {
                    format!(" pk{pk}")
                } else {
                    String::new()
                }
            ));
        }
        for r in sqlx::query("SELECT name, \"unique\", origin, partial FROM pragma_index_list($1)")
            .bind(t)
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let (name, unique, origin, partial): (String, i64, String, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if origin == "pk" {
                continue;
            }
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            // A UNIQUE column constraint: PostgreSQL names it <table>_<column>_key.
            let name = if origin == "u" {
                format!("{t}_{}_key", cols.join("_"))
            } else {
                name
            };
            indexes.insert(format!(
                "{t}: {name} ({}){}{}",
                cols.join(", "),
                if unique == 1 { " unique" } else { "" },
                if partial == 1 { " partial" } else { "" }
            ));
        }
    }
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap();
    (columns, indexes, versions)
}

async fn postgres_schema(pool: &sqlx::AnyPool) -> Schema {
    let mut columns = BTreeSet::new();
    for r in sqlx::query(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text, \
                COALESCE((SELECT k.ordinal_position::bigint FROM information_schema.table_constraints tc \
                  JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name \
                   AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name \
                  WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema \
                    AND tc.table_name = c.table_name AND k.column_name = c.column_name), 0) AS pk \
         FROM information_schema.columns c \
         WHERE c.table_schema = current_schema() AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let (t, name, ty, nullable, pk): (String, String, String, String, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        columns.insert(format!(
            "{t}.{name} {ty} {}{}",
            if nullable == "NO" { "not null" } else { "null" },
            if pk > 0 { format!(" pk{pk}") } else { String::new() }
        ));
    }
    let mut indexes = BTreeSet::new();
    for r in sqlx::query(
        "SELECT t.relname::text, i.relname::text, ix.indisunique, ix.indpred IS NOT NULL, ix.indisprimary, \
                array_to_string(ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ', ') \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let (t, name, unique, partial, primary, cols): (String, String, bool, bool, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if primary {
            continue;
        }
        indexes.insert(format!(
            "{t}: {name} ({cols}){}{}",
            if unique { " unique" } else { "" },
            if partial { " partial" } else { "" }
        ));
    }
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap();
    (columns, indexes, versions)
}

async fn migrated(url: String, dir: &std::path::Path) -> sqlx::AnyPool {
    let config = sts::Config::for_tests(url, dir.join("master.key"));
    sts::store::connect(&config).await.expect("migrate")
}

#[tokio::test]
async fn both_engines_have_the_same_migrations_and_the_same_schema() {
    let sqlite_files = migrations("sqlite");
    assert_eq!(
        sqlite_files,
        migrations("postgres"),
        "every migration exists for both engines, under the same name"
    );
    let dir = tempfile::tempdir().unwrap();
    let lite = migrated(
        format!("sqlite://{}/sts.db", dir.path().display()),
        dir.path(),
    )
    .await;
    let pg = migrated(sts_tests::postgres::cluster().create_database(), dir.path()).await;
    let (lite_cols, lite_idx, lite_versions) = sqlite_schema(&lite).await;
    let (pg_cols, pg_idx, pg_versions) = postgres_schema(&pg).await;
    assert_eq!(lite_versions.len(), sqlite_files.len());
    assert_eq!(lite_versions, pg_versions);
    assert!(
        lite_cols.len() > 50,
        "the introspection sees the tables: {lite_cols:?}"
    );
    let only =
        |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect::<Vec<_>>();
    assert!(
        lite_cols == pg_cols,
        "columns only in SQLite: {:#?}\ncolumns only in PostgreSQL: {:#?}",
        only(&lite_cols, &pg_cols),
        only(&pg_cols, &lite_cols)
    );
    assert!(lite_idx.len() > 10, "{lite_idx:?}");
    assert!(
        lite_idx == pg_idx,
        "indexes only in SQLite: {:#?}\nindexes only in PostgreSQL: {:#?}",
        only(&lite_idx, &pg_idx),
        only(&pg_idx, &lite_idx)
    );
}

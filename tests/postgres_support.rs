//! The PostgreSQL test support itself (`tests/support/postgres.rs`): a private server
//! starts and answers, pauses and resumes, is killed and restarted on its port with its
//! data, logs the statements a client sends, and is shared by the tests of a binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use support::postgres::{self, PostgresServer, processes_of, table_name};

/// Whether process `pid` still runs (a zombie does not).
fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        state != Some(Some('Z'))
    })
}

#[tokio::test]
async fn a_server_starts_and_answers() {
    let server = PostgresServer::start();
    assert!(
        server
            .url()
            .ends_with(&format!(":{}/postgres", server.port()))
    );
    assert_ne!(server.port(), 5432);
    let pool = server.pool().await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fsync, "off");
    let processes = processes_of(server.pid());
    assert_eq!(processes[0], server.pid());
    assert!(
        processes.len() > 1,
        "a postmaster with children: {processes:?}"
    );
    println!(
        "PostgreSQL {version} on port {}, processes {processes:?}",
        server.port()
    );
}

#[tokio::test]
async fn pause_stops_answers_and_resume_brings_them_back() {
    let server = PostgresServer::start();
    let pool = server.pool().await;
    let answer = || sqlx::query_scalar::<_, i32>("SELECT 7").fetch_one(&pool);
    assert_eq!(answer().await.unwrap(), 7);

    server.pause();
    let paused = tokio::time::timeout(Duration::from_millis(300), answer()).await;
    assert!(paused.is_err(), "a paused server answered: {paused:?}");

    server.resume();
    let resumed = tokio::time::timeout(Duration::from_secs(10), answer())
        .await
        .expect("an answer within 10 s of resume");
    assert_eq!(resumed.unwrap(), 7);
}

#[tokio::test]
async fn kill_fails_connections_and_restart_keeps_the_data_and_port() {
    let mut server = PostgresServer::start();
    let port = server.port();
    let table = table_name("kill restart");
    {
        let mut connection = PgConnection::connect(&server.url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, note text NOT NULL)"
        )))
        .execute(&mut connection)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} VALUES (1, 'before the kill')"
        )))
        .execute(&mut connection)
        .await
        .unwrap();
        connection.close().await.unwrap();
    }

    let cluster = processes_of(server.pid());
    server.kill();
    assert!(
        cluster.iter().all(|&pid| !runs(pid)),
        "every process of the cluster is gone: {cluster:?}"
    );
    let refused = PgConnection::connect(&server.url()).await;
    assert!(refused.is_err(), "a killed server accepted a connection");

    server.restart();
    assert_eq!(server.port(), port);
    let pool = server.pool().await;
    let note: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT note FROM {table} WHERE id = 1"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(note, "before the kill");
}

#[tokio::test]
async fn statements_since_sees_exactly_what_a_client_sent() {
    let server = PostgresServer::start_with(&[("log_statement", "all")]);
    let mut connection = PgConnection::connect(&server.url()).await.unwrap();

    let mark = server.log_mark();
    let answer: i32 = sqlx::query_scalar("SELECT 41 + 1")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(server.statements_since(mark), ["SELECT 41 + 1"]);

    // A statement of several lines, with a parameter (logged apart, as a `DETAIL:`).
    let mark = server.log_mark();
    let answer: i32 = sqlx::query_scalar("SELECT $1::int4\n  + 1")
        .bind(1_i32)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(answer, 2);
    assert_eq!(server.statements_since(mark), ["SELECT $1::int4\n  + 1"]);
}

/// A row written to and read from a fresh table of the shared server.
async fn use_the_shared_server(what: &str) -> u16 {
    let server = postgres::shared();
    let pool = server.pool().await;
    let table = table_name(what);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (what text NOT NULL)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} VALUES ($1)"
    )))
    .bind(what)
    .execute(&pool)
    .await
    .unwrap();
    let seen: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT what FROM {table}")))
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(seen, [what]);
    server.port()
}

#[tokio::test]
async fn the_shared_server_serves_one_test() {
    let port = use_the_shared_server("shared one").await;
    assert_eq!(port, postgres::shared().port());
}

#[tokio::test]
async fn the_shared_server_serves_another_test() {
    let port = use_the_shared_server("shared two").await;
    assert_eq!(port, postgres::shared().port());
}

#[test]
fn table_names_are_fresh_plain_identifiers() {
    let long = "A very Long-name, with punctuation! ".repeat(4);
    let names = [table_name("x"), table_name("x"), table_name(&long)];
    assert_ne!(names[0], names[1]);
    for name in &names {
        assert!(name.len() <= 63, "{name} is too long");
        assert!(name.starts_with("idem_"), "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name} needs quoting"
        );
    }
}

//! Key lifecycle with an injected clock: rotation, publication window, retirement, master-key checks.

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::config::{Config, MasterKeySource, Secret};

async fn setup(dir: &std::path::Path, clock: Arc<ManualClock>) -> (Config, Arc<KeyService>) {
    let config = Config::for_tests(
        format!("sqlite://{}/sts.db", dir.display()),
        dir.join("keys/master.key"),
    );
    let pool = store::connect(&config).await.unwrap();
    let service = KeyService::open(pool, &config, clock, "test")
        .await
        .unwrap();
    (config, Arc::new(service))
}

#[tokio::test]
async fn rotation_keeps_previous_key_published_until_grace_then_retires_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000);
    let (config, service) = setup(dir.path(), clock.clone()).await;
    service.ensure_active().await.unwrap();
    let ring = Arc::new(KeyRing::load(service.clone(), 300).await.unwrap());
    let first = ring.current().active.clone().unwrap().kid.clone();
    assert_eq!(ring.current().jwks.kids, vec![first.clone()]);

    let second = service.regenerate().await.unwrap();
    assert!(ring.refresh().await.unwrap());
    let snap = ring.current();
    assert_eq!(snap.active.as_ref().unwrap().kid, second.kid);
    assert_eq!(
        snap.jwks.kids,
        vec![second.kid.clone(), first.clone()],
        "active first, previous still published"
    );

    let grace = config.publish_grace_seconds();
    clock.advance(grace - 1);
    assert!(!ring.refresh().await.unwrap(), "still inside the window");
    assert_eq!(ring.current().jwks.kids.len(), 2);

    clock.advance(1);
    assert!(ring.refresh().await.unwrap());
    assert_eq!(ring.current().jwks.kids, vec![second.kid.clone()]);
    let list = service.list().await.unwrap();
    assert_eq!(list.len(), 2, "nothing is deleted");
    let old = list.iter().find(|k| k.kid == first).unwrap();
    assert_eq!(old.state, "retired");
    assert_eq!(old.publish_until, Some(1_800_000_000 + grace));
}

#[tokio::test]
async fn ensure_active_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (_, service) = setup(dir.path(), ManualClock::new(1_800_000_000)).await;
    service.ensure_active().await.unwrap();
    service.ensure_active().await.unwrap();
    assert_eq!(service.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn wrong_or_missing_master_key_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let (config, service) = setup(dir.path(), ManualClock::new(1_800_000_000)).await;
    service.ensure_active().await.unwrap();
    let pool = service.pool().clone();

    let mut wrong = config.clone();
    wrong.master_key = MasterKeySource::Inline(Secret::new(
        base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    ));
    let err = KeyService::open(pool.clone(), &wrong, crate::clock::system(), "test")
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("wrong master key"), "{err}");

    let mut missing = config.clone();
    let absent = dir.path().join("elsewhere/master.key");
    missing.master_key = MasterKeySource::File(absent.clone());
    let err = KeyService::open(pool.clone(), &missing, crate::clock::system(), "test")
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::MasterKeyMissing { .. }), "{err}");
    assert!(
        !absent.exists(),
        "no replacement master key is created when keys exist"
    );
    assert_eq!(store::keys::count(&pool).await.unwrap(), 1);
}

#[tokio::test]
async fn stored_private_key_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, service) = setup(dir.path(), ManualClock::new(1_800_000_000)).await;
    let material = KeyMaterial::generate(2048).unwrap();
    let kid = material.kid();
    let (_, sealed) = service.seal_material(&material).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
    assert!(
        !raw.windows(64)
            .any(|w| material.pkcs8.windows(64).any(|p| p == w))
    );
    assert_eq!(
        &*service.master.open(&sealed, &aad(&kid)).unwrap(),
        &*material.pkcs8
    );
}

#[tokio::test]
async fn a_staged_key_is_published_then_promoted_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000);
    let (config, service) = setup(dir.path(), clock.clone()).await;
    service.ensure_active().await.unwrap();
    let ring = Arc::new(KeyRing::load(service.clone(), 300).await.unwrap());
    let first = ring.current().active.clone().unwrap().kid.clone();

    let next = service.stage_next(None).await.unwrap();
    assert_eq!(next.state, "next");
    let delay = config.next_key_delay_seconds();
    assert_eq!(delay, 300 + 5 + 60, "max age + reload interval + leeway");
    assert_eq!(next.activate_after, Some(1_800_000_000 + delay));
    assert!(ring.refresh().await.unwrap());
    let snap = ring.current();
    assert_eq!(
        snap.active.as_ref().unwrap().kid,
        first,
        "it signs nothing yet"
    );
    assert_eq!(
        snap.jwks.kids,
        vec![first.clone(), next.kid.clone()],
        "but it is published"
    );
    assert!(
        matches!(
            service.stage_next(None).await,
            Err(KeyError::NextStaged { .. })
        ),
        "one next key at a time"
    );

    // One second early: nothing changes. At its time: promoted, once, even when asked twice.
    clock.advance(delay - 1);
    assert_eq!(service.promote_due().await.unwrap(), None);
    clock.advance(1);
    assert_eq!(service.promote_due().await.unwrap(), Some(next.kid.clone()));
    assert_eq!(service.promote_due().await.unwrap(), None);
    assert!(ring.refresh().await.unwrap());
    let snap = ring.current();
    assert_eq!(snap.active.as_ref().unwrap().kid, next.kid);
    assert_eq!(snap.jwks.kids, vec![next.kid.clone(), first.clone()]);
    let states: Vec<_> = service
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect();
    assert!(states.contains(&(first, "published".to_string())));
    assert!(states.contains(&(next.kid, "active".to_string())));
}

#[tokio::test]
async fn scheduled_rotation_stages_a_key_when_the_active_one_is_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000);
    let mut config = Config::for_tests(
        format!("sqlite://{}/sts.db", dir.path().display()),
        dir.path().join("keys/master.key"),
    );
    config.key_rotate_after = Some(std::time::Duration::from_secs(30 * 86_400));
    let pool = store::connect(&config).await.unwrap();
    let service = KeyService::open(pool, &config, clock.clone(), "test")
        .await
        .unwrap();
    service.ensure_active().await.unwrap();
    assert_eq!(service.stage_if_due().await.unwrap(), None, "too young");
    clock.advance(30 * 86_400);
    let staged = service.stage_if_due().await.unwrap().expect("staged");
    assert_eq!(service.stage_if_due().await.unwrap(), None, "one at a time");
    let next = service
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == staged)
        .unwrap();
    assert_eq!(next.state, "next");
}

//! Unit tests of the SQLite state store.

use super::*;
use crate::db::Db;
use crate::directory::Directory;
use crate::store::RevocationKind;

const POLICY: RefreshPolicy = RefreshPolicy {
    idle: 100,
    absolute: 1000,
    grace: 10,
};

async fn setup() -> Result<(tempfile::TempDir, SqliteStore, i64), Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
    let db = Db::open(&dir.path().join("t.db"))?;
    let user = Directory::new(db.clone())
        .add("alice".into(), "x".into(), vec![])
        .await?;
    Ok((dir, SqliteStore::new(db), user.id))
}

fn hash(token: &str) -> Result<refresh::RefreshKey, Error> {
    refresh::parse(token).ok_or(Error::Internal("unparsable token".into()))
}

#[tokio::test]
async fn rotation_grace_and_reuse() -> Result<(), Error> {
    let (_d, store, uid) = setup().await?;
    let (family, t0) = store.create_family(uid, 0, POLICY).await?;
    let Rotation::Rotated {
        token: t1,
        family: f1,
    } = store.rotate(hash(&t0)?, 5, POLICY).await?
    else {
        return Err(Error::Internal("first use must rotate".into()));
    };
    assert_eq!(f1.id, family.id);
    assert!(
        matches!(
            store.rotate(hash(&t0)?, 15, POLICY).await?,
            Rotation::Grace { .. }
        ),
        "within grace"
    );
    assert!(
        matches!(
            store.rotate(hash(&t0)?, 16, POLICY).await?,
            Rotation::Reused { .. }
        ),
        "after grace: reuse"
    );
    // Reuse revoked the whole family: the current token is dead too.
    assert!(matches!(
        store.rotate(hash(&t1)?, 17, POLICY).await?,
        Rotation::Invalid
    ));
    assert_eq!(store.family_of(hash(&t1)?, 17).await?, None);
    Ok(())
}

#[tokio::test]
async fn idle_and_absolute_lifetimes() -> Result<(), Error> {
    let (_d, store, uid) = setup().await?;
    let (_f, t0) = store.create_family(uid, 0, POLICY).await?;
    assert!(
        matches!(
            store.rotate(hash(&t0)?, 100, POLICY).await?,
            Rotation::Invalid
        ),
        "idle expired"
    );
    let (_f, mut t) = store.create_family(uid, 0, POLICY).await?;
    let mut now = 0;
    while now < 990 {
        now += 90;
        match store.rotate(hash(&t)?, now, POLICY).await? {
            Rotation::Rotated { token, .. } => t = token,
            other if now >= 1000 => assert!(matches!(other, Rotation::Invalid)),
            other => return Err(Error::Internal(format!("unexpected {other:?} at {now}"))),
        }
    }
    assert!(
        matches!(
            store.rotate(hash(&t)?, 1000, POLICY).await?,
            Rotation::Invalid
        ),
        "absolute expired"
    );
    Ok(())
}

#[tokio::test]
async fn revoke_user_and_revocation_feed() -> Result<(), Error> {
    let (_d, store, uid) = setup().await?;
    let (_f, t0) = store.create_family(uid, 0, POLICY).await?;
    let (_f, t1) = store.create_family(uid, 0, POLICY).await?;
    assert_eq!(store.revoke_user(uid, "test", 1).await?.len(), 2);
    assert!(matches!(
        store.rotate(hash(&t0)?, 2, POLICY).await?,
        Rotation::Invalid
    ));
    assert!(matches!(
        store.rotate(hash(&t1)?, 2, POLICY).await?,
        Rotation::Invalid
    ));
    store
        .add_revocation(Revocation {
            kind: RevocationKind::Session,
            value: "s".into(),
            created_at: 1,
            expires_at: 50,
        })
        .await?;
    let (got, cursor) = store.revocations_since(0, 10, 100).await?;
    assert_eq!(got.len(), 1);
    let (again, _) = store.revocations_since(cursor, 10, 100).await?;
    assert!(again.is_empty());
    // Read in batches: a full batch hands back where to go on, and nothing is skipped.
    for v in ["t1", "t2", "t3"] {
        store
            .add_revocation(Revocation {
                kind: RevocationKind::Token,
                value: v.into(),
                created_at: 1,
                expires_at: 50,
            })
            .await?;
    }
    let (first, next) = store.revocations_since(cursor, 10, 2).await?;
    let (rest, end) = store.revocations_since(next, 10, 2).await?;
    let values: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|r| r.value.as_str())
        .collect();
    assert_eq!(values, ["t1", "t2", "t3"]);
    assert!(store.revocations_since(end, 10, 2).await?.0.is_empty());
    store.purge(60).await?;
    assert!(store.revocations_since(0, 0, 100).await?.0.is_empty());
    Ok(())
}

#[tokio::test]
async fn grace_covers_only_the_direct_predecessor() -> Result<(), Error> {
    let (_d, store, uid) = setup().await?;
    let (_f, t0) = store.create_family(uid, 0, POLICY).await?;
    let Rotation::Rotated { token: t1, .. } = store.rotate(hash(&t0)?, 1, POLICY).await? else {
        return Err(Error::Internal("t0 must rotate".into()));
    };
    let Rotation::Rotated { token: t2, .. } = store.rotate(hash(&t1)?, 2, POLICY).await? else {
        return Err(Error::Internal("t1 must rotate".into()));
    };
    // t1 is t2's predecessor and t2 is unused: grace, any number of times within the window.
    for now in [3, 4] {
        assert!(matches!(
            store.rotate(hash(&t1)?, now, POLICY).await?,
            Rotation::Grace { .. }
        ));
    }
    // t0, rotated 4 s ago (inside the 10 s window), is two generations back: reuse.
    assert!(matches!(
        store.rotate(hash(&t0)?, 5, POLICY).await?,
        Rotation::Reused { .. }
    ));
    assert!(matches!(
        store.rotate(hash(&t2)?, 6, POLICY).await?,
        Rotation::Invalid
    ));
    Ok(())
}

//! The conformance suite every storage engine passes. An engine's test calls
//! [`exercise`] with an empty store.

use crate::{Batch, Store, StoreError};

pub async fn exercise<S: Store>(store: &S) {
    // Get, put, overwrite, delete.
    assert_eq!(store.get("a/1").await.unwrap(), None);
    store
        .commit(Batch::new().put("a/1", b"one".to_vec()))
        .await
        .unwrap();
    assert_eq!(store.get("a/1").await.unwrap(), Some(b"one".to_vec()));
    store
        .commit(Batch::new().put("a/1", b"uno".to_vec()))
        .await
        .unwrap();
    assert_eq!(store.get("a/1").await.unwrap(), Some(b"uno".to_vec()));
    store.commit(Batch::new().delete("a/1")).await.unwrap();
    assert_eq!(store.get("a/1").await.unwrap(), None);

    // Listing is by prefix, ordered, paged, and does not leak neighbours.
    let mut batch = Batch::new();
    for i in 0..30 {
        batch = batch.put(format!("p/{i:02}"), vec![i as u8]);
    }
    batch = batch
        .put("p0", vec![])
        .put("o/x", vec![])
        .put("q/x", vec![]);
    store.commit(batch).await.unwrap();
    let page = store.list_page("p/", None, 10).await.unwrap();
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].key, "p/00");
    assert_eq!(page[9].key, "p/09");
    let rest = store.list_page("p/", Some("p/09"), 100).await.unwrap();
    assert_eq!(rest.len(), 20);
    assert_eq!(rest[0].key, "p/10");
    assert_eq!(rest[19].value, vec![29]);
    assert!(
        store
            .list_page("p/", Some("p/29"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_page("zz/", None, 10).await.unwrap().is_empty());

    // Preconditions: a failed one writes nothing of its batch.
    let err = store
        .commit(Batch::new().expect_absent("p/00").put("new/1", vec![1]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref k) if k == "p/00"));
    assert_eq!(store.get("new/1").await.unwrap(), None);
    store
        .commit(
            Batch::new()
                .expect_equals("p/00", vec![0])
                .put("p/00", vec![100]),
        )
        .await
        .unwrap();
    assert!(
        store
            .commit(
                Batch::new()
                    .expect_equals("p/00", vec![0])
                    .put("p/00", vec![200])
            )
            .await
            .is_err()
    );
    assert_eq!(store.get("p/00").await.unwrap(), Some(vec![100]));

    // Of many conditional creators of one key, exactly one wins.
    let mut wins = 0;
    for i in 0..8u8 {
        if store
            .commit(Batch::new().expect_absent("race").put("race", vec![i]))
            .await
            .is_ok()
        {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.get("race").await.unwrap(), Some(vec![0]));

    // Binary values round-trip exactly.
    let blob: Vec<u8> = (0..=255u8).collect();
    store
        .commit(Batch::new().put("bin", blob.clone()))
        .await
        .unwrap();
    assert_eq!(store.get("bin").await.unwrap(), Some(blob));
}

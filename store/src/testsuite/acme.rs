//! Contract cases: the ACME records ([`crate::acme::AcmeStore`]): EAB keys bind one
//! account, one account per key, order and authorization compare-and-set.

use super::*;
use crate::acme::{
    AccountStatus, AcmeAccount, AcmeAuthz, AcmeChallenge, AcmeIdentifier, AcmeOrder, AcmeStore,
    AuthzStatus, ChallengeStatus, EabKey, OrderStatus,
};

fn acme(s: &Arc<dyn Store>) -> &dyn AcmeStore {
    s.acme().expect("this backend holds ACME records")
}

/// An EAB key `kid` of endpoint `ep`.
pub fn eab(kid: &str, ep: &str) -> EabKey {
    EabKey {
        kid: kid.into(),
        hmac_key: vec![7; 32],
        endpoint: ep.into(),
        created_by: "tester".into(),
        created_at: 1000,
        account: None,
        used_at: None,
    }
}

/// An account `id` of endpoint `ep` whose key has thumbprint `tp`.
pub fn account(id: &str, ep: &str, tp: &str) -> AcmeAccount {
    AcmeAccount {
        id: id.into(),
        endpoint: ep.into(),
        thumbprint: tp.into(),
        jwk: "{}".into(),
        contacts: vec!["mailto:a@b.example".into()],
        status: AccountStatus::Valid,
        eab_kid: None,
        created_at: 2000,
    }
}

fn authz(id: &str, acct: &str) -> AcmeAuthz {
    AcmeAuthz {
        id: id.into(),
        endpoint: "ep".into(),
        account: acct.into(),
        identifier: AcmeIdentifier {
            kind: "dns".into(),
            value: format!("{id}.example"),
        },
        status: AuthzStatus::Pending,
        expires: 9000,
        challenges: vec![AcmeChallenge {
            kind: "http-01".into(),
            token: format!("tok-{id}"),
            status: ChallengeStatus::Pending,
            validated: None,
            error: None,
        }],
    }
}

fn order(id: &str, acct: &str, authzs: &[&str], created: i64) -> AcmeOrder {
    AcmeOrder {
        id: id.into(),
        endpoint: "ep".into(),
        account: acct.into(),
        status: OrderStatus::Pending,
        expires: 9000,
        identifiers: Vec::new(),
        authorizations: authzs.iter().map(|a| a.to_string()).collect(),
        profile: None,
        csr_sha256: None,
        certificate: None,
        pending_id: None,
        error: None,
        created_at: created,
        replaces: None,
    }
}

/// An EAB key binds exactly one account, even when many newAccount requests race with
/// it; a key of another endpoint or an unknown one binds none; the MAC key is stored as
/// given and never shown by `Debug`.
pub fn acme_eab_key_binds_exactly_one_account(db: &dyn TestDatabase) {
    let s = db.open();
    acme(&s)
        .put_eab_key(&eab("k1", "ep"), &event("acme-eab-create", "k1"))
        .unwrap();
    assert!(matches!(
        acme(&s).put_eab_key(&eab("k1", "ep"), &event("acme-eab-create", "k1")),
        Err(Error::Conflict(_))
    ));
    let got = acme(&s).eab_key("k1").unwrap().unwrap();
    assert_eq!(got.hmac_key, vec![7; 32]);
    assert!(!format!("{got:?}").contains("7, 7"));
    assert!(matches!(
        acme(&s).create_account(&account("x", "other", "tx"), Some("k1"), &event("a", "x")),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        acme(&s).create_account(&account("x", "ep", "tx"), Some("nope"), &event("a", "x")),
        Err(Error::NotFound(_))
    ));
    assert!(acme(&s).account("x").unwrap().is_none());
    let wins: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                scope.spawn(move || {
                    let a = account(&format!("acct{i}"), "ep", &format!("tp{i}"));
                    acme(&s)
                        .create_account(&a, Some("k1"), &event("a", "b"))
                        .is_ok() as usize
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
    let key = acme(&s).eab_key("k1").unwrap().unwrap();
    let bound = key.account.expect("bound");
    assert_eq!(key.used_at, Some(2000));
    assert!(acme(&s).account(&bound).unwrap().is_some());
    let others = (0..8)
        .filter(|i| acme(&s).account(&format!("acct{i}")).unwrap().is_some())
        .count();
    assert_eq!(others, 1, "the refused requests left no account behind");
    assert_eq!(acme(&s).list_eab_keys().unwrap().len(), 1);
}

/// One account per key thumbprint; updates keep the thumbprint index right; everything
/// survives a reopen.
pub fn acme_accounts_are_unique_per_key_and_durable(db: &dyn TestDatabase) {
    {
        let s = db.open();
        acme(&s)
            .create_account(&account("a1", "ep", "t1"), None, &event("a", "a1"))
            .unwrap();
        assert!(matches!(
            acme(&s).create_account(&account("a2", "ep", "t1"), None, &event("a", "a2")),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            acme(&s).create_account(&account("a1", "ep", "t9"), None, &event("a", "a1")),
            Err(Error::Conflict(_))
        ));
        acme(&s)
            .create_account(&account("a2", "ep", "t2"), None, &event("a", "a2"))
            .unwrap();
        // A key change to a key another account holds is refused.
        let mut a1 = account("a1", "ep", "t2");
        assert!(matches!(
            acme(&s).update_account(&a1, &event("u", "a1")),
            Err(Error::Conflict(_))
        ));
        a1.thumbprint = "t3".into();
        a1.status = AccountStatus::Deactivated;
        acme(&s).update_account(&a1, &event("u", "a1")).unwrap();
        assert!(matches!(
            acme(&s).update_account(&account("zz", "ep", "t8"), &event("u", "zz")),
            Err(Error::NotFound(_))
        ));
    }
    let s = db.open();
    assert!(acme(&s).account_by_thumbprint("t1").unwrap().is_none());
    let a1 = acme(&s).account_by_thumbprint("t3").unwrap().unwrap();
    assert_eq!(a1.id, "a1");
    assert_eq!(a1.status, AccountStatus::Deactivated);
    assert_eq!(acme(&s).account("a2").unwrap().unwrap().thumbprint, "t2");
}

/// An order and its authorizations are created together or not at all; status moves
/// are compare-and-set, so of racing finalize requests exactly one wins and an order
/// becomes valid exactly once.
pub fn acme_orders_move_on_exactly_once(db: &dyn TestDatabase) {
    let s = db.open();
    let before = s.stats().unwrap().audit_entries;
    acme(&s)
        .create_order(
            &order("o1", "a1", &["z1", "z2"], 5),
            &[authz("z1", "a1"), authz("z2", "a1")],
            &event("acme-order", "o1"),
        )
        .unwrap();
    // An id that exists refuses the whole order: the new authorization is not written.
    assert!(matches!(
        acme(&s).create_order(
            &order("o2", "a1", &["z3", "z1"], 6),
            &[authz("z3", "a1"), authz("z1", "a1")],
            &event("acme-order", "o2")
        ),
        Err(Error::Conflict(_))
    ));
    assert!(acme(&s).authz("z3").unwrap().is_none());
    assert!(acme(&s).order("o2").unwrap().is_none());
    // What an order replaces (RFC 9773) is kept.
    let mut o0 = order("o0", "a1", &[], 1);
    o0.replaces = Some("aki.serial".into());
    acme(&s)
        .create_order(&o0, &[], &event("acme-order", "o0"))
        .unwrap();
    assert_eq!(
        acme(&s).order("o0").unwrap().unwrap().replaces.as_deref(),
        Some("aki.serial")
    );
    acme(&s)
        .create_order(&order("o9", "a9", &[], 1), &[], &event("acme-order", "o9"))
        .unwrap();
    let ids: Vec<String> = acme(&s)
        .orders_of("a1")
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, ["o0", "o1"]);

    // Authorization compare-and-set.
    let old = acme(&s).authz("z1").unwrap().unwrap();
    let mut started = old.clone();
    started.challenges[0].status = ChallengeStatus::Processing;
    acme(&s).update_authz(&started, &old, None).unwrap();
    assert!(matches!(
        acme(&s).update_authz(&started, &old, None),
        Err(Error::Conflict(_))
    ));
    let mut done = started.clone();
    done.status = AuthzStatus::Valid;
    done.challenges[0].status = ChallengeStatus::Valid;
    acme(&s).update_authz(&done, &started, None).unwrap();
    assert_eq!(
        acme(&s).authz("z1").unwrap().unwrap().status,
        AuthzStatus::Valid
    );

    // Order compare-and-set: ready -> processing by one of many, -> valid once.
    let mut o = acme(&s).order("o1").unwrap().unwrap();
    o.status = OrderStatus::Ready;
    acme(&s)
        .update_order(&o, OrderStatus::Pending, None)
        .unwrap();
    let wins: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                let mut o = o.clone();
                scope.spawn(move || {
                    o.status = OrderStatus::Processing;
                    o.csr_sha256 = Some(format!("csr{i}"));
                    acme(&s)
                        .update_order(&o, OrderStatus::Ready, Some(&event("acme-finalize", "o1")))
                        .is_ok() as usize
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
    let mut o = acme(&s).order("o1").unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::Processing);
    o.status = OrderStatus::Valid;
    o.certificate = Some(vec![1, 2, 3]);
    acme(&s)
        .update_order(
            &o,
            OrderStatus::Processing,
            Some(&event("acme-issued", "o1")),
        )
        .unwrap();
    assert!(matches!(
        acme(&s).update_order(&o, OrderStatus::Processing, None),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        acme(&s).update_order(&order("nope", "a1", &[], 1), OrderStatus::Pending, None),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        acme(&s).order("o1").unwrap().unwrap().certificate,
        Some(vec![1, 2, 3])
    );
    // Three orders created, one finalize won, one issuance: five audit entries.
    assert_eq!(s.stats().unwrap().audit_entries - before, 5);
}

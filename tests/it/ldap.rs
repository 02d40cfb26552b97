//! LDAP / Active Directory logins against a real `slapd`.

use crate::support::*;

/// The fixture itself: a real slapd with the seeded directory, over plain LDAP, StartTLS and
/// LDAPS, with memberOf, escaped DNs and password ACLs as the LDAP tests expect.
#[tokio::test]
async fn fixture_serves_the_seeded_directory() -> TestResult {
    use std::collections::HashSet;

    use crate::support::ldap::*;
    use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

    let slapd = Slapd::start().await?;
    let tls = slapd.tls_config()?;
    assert!(slapd.ca_file().exists());

    async fn connect(url: &str, settings: LdapConnSettings) -> Result<Ldap, LdapError> {
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }
    let plain = || LdapConnSettings::new();
    let secure = || LdapConnSettings::new().set_config(tls.clone());

    // The service account binds over plain LDAP, StartTLS and LDAPS.
    let mut svc = connect(&slapd.url(), plain()).await?;
    svc.simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .await?
        .success()?;
    let mut starttls = connect(&slapd.url(), secure().set_starttls(true)).await?;
    starttls
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .await?
        .success()?;
    let mut ldaps = connect(&slapd.ldaps_url(), secure()).await?;
    ldaps
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .await?
        .success()?;

    // Alice, found by uid, carries memberOf (an operational attribute: asked for by name).
    for ldap in [&mut svc, &mut starttls, &mut ldaps] {
        let (entries, _) = ldap
            .search(
                PEOPLE_DN,
                Scope::Subtree,
                "(&(objectClass=inetOrgPerson)(uid=alice))",
                vec!["cn", "mail", "memberOf", "userPassword"],
            )
            .await?
            .success()?;
        assert_eq!(entries.len(), 1);
        let alice = SearchEntry::construct(entries.into_iter().next().ok_or("no alice")?);
        assert_eq!(alice.dn, ALICE_DN);
        assert_eq!(alice.attrs["cn"], ["Alice Admin"]);
        assert_eq!(alice.attrs["mail"], ["alice@example.com"]);
        let groups: HashSet<&str> = alice.attrs["memberOf"].iter().map(String::as_str).collect();
        assert_eq!(groups, HashSet::from([DASH_ADMINS_DN, DASH_VIEWERS_DN]));
        // The service account never reads passwords.
        assert!(!alice.attrs.contains_key("userPassword"), "{alice:?}");
        assert!(!alice.bin_attrs.contains_key("userPassword"), "{alice:?}");
    }
    // ... nor can it probe them with a filter.
    let (entries, _) = svc
        .search(PEOPLE_DN, Scope::Subtree, "(userPassword=*)", vec!["uid"])
        .await?
        .success()?;
    assert!(entries.is_empty(), "{entries:?}");

    // Dave's DN needs escaping; his groups by memberOf and by a member search agree.
    let (entries, _) = svc
        .search(
            BASE_DN,
            Scope::Subtree,
            "(uid=dave)",
            vec!["cn", "memberOf"],
        )
        .await?
        .success()?;
    let dave = SearchEntry::construct(entries.into_iter().next().ok_or("no dave")?);
    assert_eq!(dave.dn, DAVE_DN);
    assert!(dave.attrs["cn"].iter().any(|c| c == "Dave (Contractor)"));
    let expected = HashSet::from([DASH_VIEWERS_DN, DASH_DAVE_ONLY_DN]);
    let by_memberof: HashSet<&str> = dave.attrs["memberOf"].iter().map(String::as_str).collect();
    assert_eq!(by_memberof, expected);
    let filter = format!(
        "(&(objectClass=groupOfNames)(member={}))",
        ldap3::ldap_escape(&dave.dn)
    );
    let (entries, _) = svc
        .search(GROUPS_DN, Scope::Subtree, &filter, vec!["cn"])
        .await?
        .success()?;
    let by_search: HashSet<String> = entries
        .into_iter()
        .map(|e| SearchEntry::construct(e).dn)
        .collect();
    assert_eq!(
        by_search,
        expected.iter().map(|s| (*s).to_owned()).collect(),
        "{filter}"
    );
    // Carol is in no group.
    let (entries, _) = svc
        .search(BASE_DN, Scope::Subtree, "(uid=carol)", vec!["memberOf"])
        .await?
        .success()?;
    let carol = SearchEntry::construct(entries.into_iter().next().ok_or("no carol")?);
    assert_eq!(carol.dn, CAROL_DN);
    assert!(!carol.attrs.contains_key("memberOf"), "{carol:?}");

    // Users bind with their own password, including dave by his escaped DN; wrong ones get 49.
    for (dn, password) in [
        (ALICE_DN, ALICE_PASSWORD),
        (BOB_DN, BOB_PASSWORD),
        (CAROL_DN, CAROL_PASSWORD),
        (DAVE_DN, DAVE_PASSWORD),
        (ADMIN_DN, ADMIN_PASSWORD),
    ] {
        let mut ldap = connect(&slapd.url(), secure().set_starttls(true)).await?;
        ldap.simple_bind(dn, password).await?.success()?;
        let wrong = ldap.simple_bind(dn, "wrong-password").await?;
        assert_eq!(wrong.rc, 49, "{dn}: {wrong:?}");
    }

    // Anonymous may only bind: it sees nothing.
    let mut anonymous = connect(&slapd.url(), plain()).await?;
    let found = anonymous
        .search(BASE_DN, Scope::Subtree, "(uid=alice)", vec!["cn"])
        .await?;
    assert!(found.0.is_empty(), "{found:?}");
    Ok(())
}

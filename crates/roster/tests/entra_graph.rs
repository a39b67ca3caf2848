//! A `kind = "entra"` target through the real `roster` binary, against the test kit's Entra ID
//! stand-in (Entra cannot run here: `roster_testkit::EntraFake` answers with the request and
//! response shapes Microsoft documents for the token endpoint and Graph v1.0). Joiners become
//! users with a usageLocation, a manager (created in the same run) and a licence group; a mover
//! changes department and group; a leaver is disabled, her sessions revoked and her groups left;
//! every run after that plans nothing. What the tenant holds is read from the stand-in, never
//! taken from what roster printed.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::fs;

use roster_testkit::EntraFake;
use roster_testkit::entra::{CLIENT_ID, TENANT};
use serde_json::{Value, json};
use support::{Hr, Worker};

/// The OpenLDAP fixture's store, source, lifecycle and login rules, with an entra target instead.
fn config(fake: &EntraFake) -> String {
    let fixture = include_str!("fixtures/roster.toml");
    let (head, _ldap_target) = fixture.split_once("[[target]]").expect("the fixture has a target");
    format!(
        r#"{head}[[target]]
name = "entra"
kind = "entra"
url = "{graph}"
tls = {{ allow_plaintext = true }}
[target.entra]
tenant = "{TENANT}"
client_id = "{CLIENT_ID}"
client_certificate = "app.crt"
client_key = "file:app.key"
authority = "{authority}"
groups = ["Staff Engineering", "Staff Research", "Licence E3"]
licensing_groups = ["Licence E3"]
[target.attributes]
userPrincipalName = {{ value = 'login + "@contoso.onmicrosoft.com"', when = "create" }}
mailNickname = {{ value = "login", when = "create" }}
givenName = "given_name"
surname = "family_name"
displayName = 'given_name + " " + family_name'
jobTitle = "title"
department = "department"
employeeId = "key"
usageLocation = '"DE"'
manager = "manager_dn"
[[target.groups]]
dn = '"displayName=Staff " + department + ",ou=Groups,o=entra"'
[[target.groups]]
dn = '"displayName=Licence E3,ou=Groups,o=entra"'

[safety]
disables = {{ count = 5 }}
group_removals = {{ count = 5 }}
"#,
        graph = fake.graph_url(),
        authority = fake.authority(),
    )
}

struct Tenant {
    fake: EntraFake,
    dir: tempfile::TempDir,
    groups: Vec<(String, String)>,
}

impl Tenant {
    fn start() -> Tenant {
        let fake = EntraFake::start().unwrap_or_else(|e| panic!("could not start the Entra stand-in: {e:#}"));
        let groups = ["Staff Engineering", "Staff Research", "Licence E3"]
            .map(|name| (fake.add_group(name, name.starts_with("Licence")), name.to_string()))
            .to_vec();
        // An administrator, and a user synced from AD, both left alone.
        fake.add_user(json!({ "userPrincipalName": "admin@contoso.onmicrosoft.com", "mailNickname": "admin",
            "displayName": "Admin", "accountEnabled": true }));
        fake.add_user(json!({ "userPrincipalName": "synced@contoso.onmicrosoft.com", "mailNickname": "synced",
            "displayName": "Synced", "accountEnabled": true, "onPremisesSyncEnabled": true, "employeeId": "9999" }));
        let dir = tempfile::Builder::new().prefix("roster-entra-").tempdir().expect("a temporary folder");
        fs::create_dir(dir.path().join("exports")).expect("the exports folder");
        fs::copy(fake.certificate_file(), dir.path().join("app.crt")).expect("the certificate");
        fs::copy(fake.key_file(), dir.path().join("app.key")).expect("the key");
        fs::write(dir.path().join("roster.toml"), config(&fake)).expect("the config");
        Tenant { fake, dir, groups }
    }

    /// Runs roster; the exit code, its standard output, and all it printed for messages.
    fn roster(&self, as_of: &str, args: &[&str]) -> (i32, String, String) {
        support::run_roster(self.dir.path(), as_of, args)
    }

    fn run(&self, hr: &Hr, as_of: &str) {
        fs::write(self.dir.path().join("exports/hr.csv"), hr.to_csv()).expect("the export");
        let (code, _, text) = self.roster(as_of, &["run"]);
        assert_eq!(code, 0, "{text}");
        let (code, stdout, text) = self.roster(as_of, &["plan", "--format", "json"]);
        assert_eq!(code, 0, "{text}");
        let plan: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the plan is JSON ({e}): {text}"));
        assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "after the run, nothing to do: {plan:#}");
    }

    fn user(&self, key: &str) -> Value {
        self.fake.user_by("employeeId", key).unwrap_or_else(|| panic!("no user with employeeId {key}"))
    }

    fn id(&self, key: &str) -> String {
        self.user(key)["id"].as_str().expect("an id").to_string()
    }

    /// The names of the groups `key`'s user is a member of, sorted.
    fn groups_of(&self, key: &str) -> Vec<String> {
        let id = self.id(key);
        let mut names: Vec<String> = self
            .groups
            .iter()
            .filter(|(group, _)| self.fake.members(group).contains(&id))
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn joiners_movers_and_leavers_reach_entra_id_through_graph() {
    let tenant = Tenant::start();
    let mut hr = Hr::new([
        Worker::new("1001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("1002", "Grace", "Hopper", "Engineering").title("Engineer").manager("1001"),
        Worker::new("1003", "Alan", "Turing", "Research").title("Researcher").manager("1001"),
    ]);

    // Day one: three joiners, the manager created in the same run as her reports.
    tenant.run(&hr, "2026-03-02");
    let grace = tenant.user("1002");
    assert_eq!(grace["userPrincipalName"], "grace.hopper@contoso.onmicrosoft.com");
    assert_eq!(grace["displayName"], "Grace Hopper");
    assert_eq!(grace["usageLocation"], "DE");
    assert_eq!(grace["accountEnabled"], true);
    assert_eq!(tenant.fake.manager_of(&tenant.id("1002")), Some(tenant.id("1001")));
    assert_eq!(tenant.groups_of("1002"), ["Licence E3", "Staff Engineering"]);
    assert_eq!(tenant.groups_of("1003"), ["Licence E3", "Staff Research"]);
    assert!(tenant.fake.license_errors().is_empty(), "{:?}", tenant.fake.license_errors());

    // Day two: Grace moves to Research: the same user, a new department and group.
    hr.worker("1002").department = "Research".into();
    tenant.run(&hr, "2026-03-09");
    let moved = tenant.user("1002");
    assert_eq!(moved["id"], grace["id"], "updated, not recreated");
    assert_eq!(moved["department"], "Research");
    assert_eq!(tenant.groups_of("1002"), ["Licence E3", "Staff Research"]);

    // Day three: Alan left on the 13th: disabled, his sessions revoked, out of his groups.
    hr.worker("1003").last_day = "2026-03-13".into();
    tenant.run(&hr, "2026-03-16");
    let alan = tenant.user("1003");
    assert_eq!(alan["accountEnabled"], false, "{alan:#}");
    assert_eq!(tenant.fake.revoked_sessions(&tenant.id("1003")), 1);
    assert!(tenant.groups_of("1003").is_empty(), "a leaver leaves the groups");
    assert_eq!(tenant.user("1001")["accountEnabled"], true);

    // The synced user was never written; the token came by certificate.
    let synced = tenant.user("9999")["id"].as_str().unwrap().to_string();
    let requests = tenant.fake.requests();
    assert!(
        !requests.iter().any(|r| r.method != "GET" && r.path.contains(&synced)),
        "nothing sent about the synced user"
    );
    assert!(requests.iter().any(|r| r.body.contains("client_assertion=")), "a certificate assertion");
}

//! Configuration checks: every mistake is reported before anything runs, with the key and line.

use roster_core::settings::{ConfigError, load};

const GOOD: &str = r#"
[time]
zone = "Europe/Berlin"

[[source]]
name = "hr"
kind = "csv"
path = "hr.csv"
key = "id"
[source.columns]
given_name = "First"
family_name = "Last"
hire_date = "Hire"
department = "Dept"

[login]
candidates = ['lower(given_name + "." + family_name)']

[[target]]
name = "ldap"
kind = "ldap"
url = "ldaps://ldap.example.org"
bind_dn = "cn=roster,dc=example,dc=org"
bind_password = "env:PW"
managed = ["ou=people,dc=example,dc=org"]
dn = '"uid=" + login + ",ou=people,dc=example,dc=org"'
disable = { lock = true }
[target.attributes]
cn = 'given_name + " " + family_name'
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    match load(text, "roster.toml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle} not in text"))
}

#[test]
fn the_good_config_loads() {
    let s = load(GOOD, "roster.toml").unwrap();
    assert_eq!(s.targets.len(), 1);
    assert_eq!(s.zone.name(), "Europe/Berlin");
}

#[test]
fn unknown_keys_are_reported_with_their_line() {
    let text = GOOD.replace("zone = \"Europe/Berlin\"", "zone = \"Europe/Berlin\"\nzones = \"x\"");
    let e = errors(&text);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, Some(line_of(&text, "zones")));
    assert!(e[0].message.contains("unknown field `zones`"), "{}", e[0].message);
    assert!(e[0].to_string().starts_with(&format!("roster.toml:{}:", line_of(&text, "zones"))));
}

#[test]
fn unknown_functions_are_reported_with_a_suggestion_and_the_line() {
    let text = GOOD.replace("cn = 'given_name", "cn = 'lowr(given_name) + given_name");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "target[0].attributes.cn");
    assert_eq!(e[0].line, Some(line_of(&text, "lowr(")));
    assert!(e[0].message.contains("lowr") && e[0].message.contains("lower"), "{}", e[0].message);
}

#[test]
fn unknown_attributes_are_reported() {
    let text = GOOD.replace("cn = 'given_name + \" \" + family_name'", "cn = 'given_name + \" \" + surname'");
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].attributes.cn");
    assert!(e[0].message.contains("surname"), "{}", e[0].message);
}

#[test]
fn a_dn_template_outside_the_managed_subtrees_is_reported() {
    let text = GOOD.replace(
        r#"dn = '"uid=" + login + ",ou=people,dc=example,dc=org"'"#,
        r#"dn = '"uid=" + login + ",ou=admins,dc=example,dc=org"'"#,
    );
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].dn");
    assert!(e[0].message.contains("outside the managed subtrees"), "{}", e[0].message);
    assert_eq!(e[0].line, Some(line_of(&text, "ou=admins")));
}

#[test]
fn a_dn_template_that_is_not_a_dn_is_reported() {
    let text = GOOD.replace(r#"dn = '"uid=" + login + ",ou=people,dc=example,dc=org"'"#, r#"dn = 'login'"#);
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].dn");
    assert!(e[0].message.contains("valid DN"), "{}", e[0].message);
}

#[test]
fn an_expression_that_fails_on_a_sample_person_is_reported() {
    let text = GOOD.replace("cn = 'given_name + \" \" + family_name'", "cn = 'left(given_name, \"x\")'");
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].attributes.cn");
    assert!(e[0].message.contains("fails on a sample person"), "{}", e[0].message);
}

#[test]
fn secrets_must_be_references() {
    let text = GOOD.replace("bind_password = \"env:PW\"", "bind_password = \"hunter2\"");
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].bind_password");
    assert!(!e[0].message.contains("hunter2"), "the secret itself must not be echoed: {}", e[0].message);
}

#[test]
fn plaintext_ldap_is_refused_unless_allowed() {
    let text = GOOD.replace("ldaps://ldap.example.org", "ldap://ldap.example.org");
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].url");
    let allowed = text.replace("[target.attributes]", "tls = { allow_plaintext = true }\n[target.attributes]");
    assert!(load(&allowed, "roster.toml").is_ok());
}

#[test]
fn zone_date_format_and_missing_hire_date_are_checked() {
    let text = GOOD
        .replace("Europe/Berlin", "Europe/Atlantis")
        .replace("key = \"id\"", "key = \"id\"\ndate_format = \"%Q\"")
        .replace("hire_date = \"Hire\"\n", "");
    let keys: Vec<String> = errors(&text).into_iter().map(|e| e.key).collect();
    assert!(keys.contains(&"time.zone".to_string()), "{keys:?}");
    assert!(keys.contains(&"source[0].date_format".to_string()), "{keys:?}");
    assert!(keys.contains(&"source[0].columns".to_string()), "{keys:?}");
}

#[test]
fn a_group_rule_must_give_dns_and_a_condition() {
    let text =
        format!("{GOOD}\n[[target.groups]]\ndn = '\"cn=g,ou=elsewhere,dc=example,dc=org\"'\nwhen = 'department'\n");
    let keys: Vec<String> = errors(&text).into_iter().map(|e| e.key).collect();
    assert!(keys.contains(&"target[0].groups[0].dn".to_string()), "{keys:?}");
    assert!(keys.contains(&"target[0].groups[0].when".to_string()), "{keys:?}");
}

#[test]
fn an_ldap_target_must_have_a_way_to_disable() {
    let text = GOOD.replace("disable = { lock = true }\n", "");
    let e = errors(&text);
    assert_eq!(e[0].key, "target[0].disable");
}

#[test]
fn percentages_and_sample_evaluations_are_checked() {
    let text = format!(
        "{GOOD}\n[safety]\nsource_shrink_percent = 250\nattribute_changes = [{{ attributes = [], count = 1 }}]\n"
    );
    let keys: Vec<String> = errors(&text).into_iter().map(|e| e.key).collect();
    assert!(keys.contains(&"safety.source_shrink_percent".to_string()), "{keys:?}");
    assert!(keys.contains(&"safety.attribute_changes[0].attributes".to_string()), "{keys:?}");
    let fallback = GOOD.replace("[login]\n", "[login]\nfallback = 'size(key) > 1'\n");
    assert_eq!(errors(&fallback)[0].key, "login.fallback");
}

const SERVE: &str = r#"
[serve]
listen = "127.0.0.1:8470"
[[serve.job]]
name = "hr"
schedule = "*/15 * * * *"
command = "run"
[[serve.job]]
name = "tick"
schedule = "*/5 * * * * *"
command = "reconcile"
apply = true
[[serve.token]]
name = "helpdesk"
role = "viewer"
sha256 = "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"
"#;

#[test]
fn the_serve_section_loads_with_schedules_and_token_hashes() {
    let s = load(&format!("{GOOD}{SERVE}"), "roster.toml").unwrap();
    let serve = s.serve.expect("a [serve] section");
    assert_eq!(serve.listen.to_string(), "127.0.0.1:8470");
    assert_eq!(serve.shutdown_timeout.as_secs(), 600);
    assert_eq!(serve.leader_retry.as_secs(), 5);
    assert!(serve.jobs.iter().all(|j| j.schedule.is_some()));
    assert_eq!(serve.tokens[0].sha256[..2], [0x5e, 0x88]);
    assert!(load(GOOD, "roster.toml").unwrap().serve.is_none());
}

#[test]
fn serve_mistakes_are_reported_by_key() {
    let text = format!("{GOOD}{SERVE}")
        .replace("127.0.0.1:8470", "localhost")
        .replace("*/15 * * * *", "every quarter hour")
        .replace("name = \"tick\"", "name = \"hr\"")
        .replace("5E884898", "secret");
    let keys: Vec<String> = errors(&text).into_iter().map(|e| format!("{}: {}", e.key, e.message)).collect();
    for expected in ["serve.listen", "serve.job[0].schedule", "serve.job[1].name", "serve.token[0].sha256"] {
        assert!(keys.iter().any(|k| k.starts_with(expected)), "no error for {expected}: {keys:#?}");
    }
    let no_retry = format!("{GOOD}{SERVE}").replace("[serve]\n", "[serve]\nleader_retry = 0\n");
    assert!(errors(&no_retry).iter().any(|e| e.key == "serve.leader_retry"), "{:#?}", errors(&no_retry));
    let wrong_apply = format!("{GOOD}{SERVE}").replace("command = \"reconcile\"", "command = \"plan\"");
    assert!(errors(&wrong_apply).iter().any(|e| e.key == "serve.job[1].apply"));
}

const WEBHOOKS: &str = r#"
[[notify.webhook]]
name = "ops"
url = "https://hooks.example.org/roster"
secret = "env:HOOK_KEY"
events = ["plan_held", "run_failed"]

[[notify.webhook]]
name = "lab"
url = "http://127.0.0.1:9000/hook"
secret = "file:hook.key"
"#;

#[test]
fn webhooks_load_with_their_events() {
    let s = load(&format!("{GOOD}{WEBHOOKS}"), "roster.toml").unwrap();
    let hooks = &s.notify.webhook;
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].events.len(), 2);
    assert_eq!(hooks[1].events.len(), 4, "all events when the key is left out");
    assert_eq!(hooks[1].timeout_seconds, 10);
    assert!(load(GOOD, "roster.toml").unwrap().notify.webhook.is_empty());
}

#[test]
fn webhook_mistakes_are_reported_by_key() {
    let text = format!("{GOOD}{WEBHOOKS}")
        .replace("https://hooks.example.org", "http://hooks.example.org")
        .replace("env:HOOK_KEY", "hunter2")
        .replace("name = \"lab\"", "name = \"ops\"");
    let keys: Vec<String> = errors(&text).into_iter().map(|e| format!("{}: {}", e.key, e.message)).collect();
    for expected in ["notify.webhook[0].url", "notify.webhook[0].secret", "notify.webhook[1].name"] {
        assert!(keys.iter().any(|k| k.starts_with(expected)), "no error for {expected}: {keys:#?}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("notify.webhook[1].url")), "loopback http is allowed: {keys:#?}");
    let unknown = format!("{GOOD}{WEBHOOKS}").replace("\"plan_held\"", "\"plan_approved\"");
    assert!(!errors(&unknown).is_empty());
    let allowed = text.replace(
        "name = \"ops\"\nurl = \"http://hooks",
        "name = \"x\"\ntls = { allow_plaintext = true }\nurl = \"http://hooks",
    );
    assert!(!errors(&allowed).iter().any(|e| e.key == "notify.webhook[0].url"), "allow_plaintext permits http");
}

/// GOOD with a `[target.password]` handing passwords to webhook `hook`, followed by `rest`.
fn with_hand_off(hook: &str, rest: &str) -> String {
    let password = format!("[target.password]\nlength = 16\ndelivery = {{ webhook = \"{hook}\" }}\n");
    format!("{GOOD}{password}{rest}")
}

#[test]
fn a_password_hand_off_names_a_webhook_that_is_https_or_loopback() {
    let s = load(&with_hand_off("ops", WEBHOOKS), "roster.toml").unwrap();
    let delivery = &s.targets[0].config.password.as_ref().unwrap().delivery;
    assert_eq!(delivery, &roster_core::config::PasswordDelivery::Webhook("ops".to_string()));
    load(&with_hand_off("lab", WEBHOOKS), "roster.toml").expect("a loopback webhook may take passwords");

    let key = "target[0].password.delivery.webhook";
    let unknown = errors(&with_hand_off("nobody", WEBHOOKS));
    assert!(unknown.iter().any(|e| e.key == key && e.message.contains("\"nobody\"")), "{unknown:#?}");
    let plain = WEBHOOKS.replace(
        "url = \"https://hooks.example.org/roster\"",
        "url = \"http://hooks.example.org/roster\"\ntls = { allow_plaintext = true }",
    );
    load(&format!("{GOOD}{plain}"), "roster.toml").expect("allow_plaintext permits http for events");
    let refused = errors(&with_hand_off("ops", &plain));
    assert!(refused.iter().any(|e| e.key == key && e.message.contains("plain http")), "{refused:#?}");
}

const SMTP: &str = r#"
[notify.smtp]
host = "smtp.example.org"
username = "roster"
password = "env:SMTP_PW"
from = "Roster <roster@example.org>"
to = ["ops@example.org"]
events = ["run_failed"]
"#;

#[test]
fn smtp_loads_with_tls_required_by_default() {
    let s = load(&format!("{GOOD}{SMTP}"), "roster.toml").unwrap();
    let smtp = s.notify.smtp.expect("[notify.smtp]");
    assert_eq!(smtp.tls, roster_core::config::SmtpTls::Starttls);
    assert!(!smtp.allow_plaintext);
    assert_eq!(smtp.timeout_seconds, 30);
    let implicit = SMTP.replace("host = ", "tls = \"tls\"\nhost = ");
    let s = load(&format!("{GOOD}{implicit}"), "roster.toml").unwrap();
    assert_eq!(s.notify.smtp.map(|m| m.tls), Some(roster_core::config::SmtpTls::Tls));
    let local = SMTP.replace("smtp.example.org", "127.0.0.1").replace("host = ", "allow_plaintext = true\nhost = ");
    load(&format!("{GOOD}{local}"), "roster.toml").expect("plain SMTP to loopback");
}

#[test]
fn smtp_mistakes_are_reported_by_key() {
    let keys = |text: &str| -> Vec<String> { errors(&format!("{GOOD}{text}")).into_iter().map(|e| e.key).collect() };
    let plain = SMTP.replace("host = ", "allow_plaintext = true\nhost = ");
    assert!(keys(&plain).contains(&"notify.smtp.allow_plaintext".to_string()), "plaintext to a remote server");
    let literal = SMTP.replace("env:SMTP_PW", "hunter2");
    assert!(keys(&literal).contains(&"notify.smtp.password".to_string()));
    let no_password = SMTP.replace("password = \"env:SMTP_PW\"\n", "");
    assert!(keys(&no_password).contains(&"notify.smtp.password".to_string()));
    let bad_addresses = SMTP.replace("Roster <roster@example.org>", "roster").replace("ops@example.org", "ops");
    let found = keys(&bad_addresses);
    assert!(found.contains(&"notify.smtp.from".to_string()) && found.contains(&"notify.smtp.to[0]".to_string()));
    assert!(keys(&SMTP.replace("[\"ops@example.org\"]", "[]")).contains(&"notify.smtp.to".to_string()));
    assert!(!errors(&format!("{GOOD}{}", SMTP.replace("host = ", "tls = \"none\"\nhost = "))).is_empty());
}

#[test]
fn a_store_with_both_a_path_and_a_url_is_refused_on_its_line() {
    let text = format!("[store]\npath = \"roster.db\"\nurl = \"env:ROSTER_STORE_URL\"\n{GOOD}");
    let found = errors(&text);
    let error =
        found.iter().find(|e| e.key == "store.path").unwrap_or_else(|| panic!("no store.path error: {found:#?}"));
    assert_eq!(error.line, Some(2), "{error:?}");
    assert!(error.message.contains("either path") && error.message.contains("found both"), "{}", error.message);
    let one = load(&format!("[store]\nurl = \"env:ROSTER_STORE_URL\"\n{GOOD}"), "roster.toml").unwrap();
    assert!(one.store.url.is_some());
    assert_eq!(load(GOOD, "roster.toml").unwrap().store.path(), std::path::Path::new("roster.db"));
}

#[test]
fn a_password_attribute_is_never_a_mapping() {
    for (attr, table) in [("userPassword", "attributes"), ("unicodePwd", "attributes"), ("UserPassword", "disable.set")]
    {
        let line = format!("{attr} = '\"Initial-\" + key'");
        let text = match table {
            "attributes" => GOOD.replace("cn = 'given_name", &format!("{line}\ncn = 'given_name")),
            _ => GOOD.replace("disable = { lock = true }", &format!("disable = {{ lock = true, set = {{ {line} }} }}")),
        };
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, format!("target[0].{table}.{attr}"));
        assert_eq!(e[0].line, Some(line_of(&text, &line)), "{e:?}");
        assert!(e[0].message.contains("[target.password]"), "{}", e[0].message);
    }
}

const SCIM_TARGET: &str = r#"[[target]]
name = "cloud"
kind = "scim"
url = "https://idp.example.org/scim/v2"
token = "env:SCIM_TOKEN"
[target.attributes]
displayName = 'given_name + " " + family_name'
"#;

fn with_scim_target(target: &str) -> String {
    let (head, _ldap) = GOOD.split_once("[[target]]").expect("GOOD has a target");
    format!("{head}{target}")
}

#[test]
fn a_scim_target_gets_its_synthetic_dns_and_keys_by_default() {
    let s = load(&with_scim_target(SCIM_TARGET), "roster.toml").unwrap();
    let cloud = &s.targets[0].config;
    assert_eq!(cloud.managed, ["ou=Users,o=scim", "ou=Groups,o=scim"]);
    assert_eq!(cloud.dn.get_ref(), r#""externalId=" + key + ",ou=Users,o=scim""#);
    assert_eq!((cloud.login_attribute.as_str(), cloud.correlate.as_str()), ("userName", "externalId"));
}

#[test]
fn scim_and_ldap_targets_refuse_each_others_keys() {
    let cases = [
        (SCIM_TARGET.replace("token = \"env:SCIM_TOKEN\"\n", ""), "target[0].token"),
        (SCIM_TARGET.replace("token = ", "bind_dn = \"cn=x,dc=example,dc=org\"\ntoken = "), "target[0].bind_dn"),
        (SCIM_TARGET.replace("https://", "http://"), "target[0].url"),
        (
            SCIM_TARGET.replace("[target.attributes]", "tls = { insecure_skip_verify = true }\n[target.attributes]"),
            "target[0].tls.insecure_skip_verify",
        ),
        (SCIM_TARGET.replace("token = \"env:SCIM_TOKEN\"", "token = \"s3cret\""), "target[0].token"),
        (
            SCIM_TARGET.replace("[target.attributes]", "[target.password]\ndelivery = \"none\"\n[target.attributes]"),
            "target[0].password",
        ),
        (
            SCIM_TARGET.replace("[target.attributes]", "max_request_bytes = 1048576\n[target.attributes]"),
            "target[0].max_request_bytes",
        ),
    ];
    for (target, key) in cases {
        let e = errors(&with_scim_target(&target));
        assert!(e.iter().any(|e| e.key == key), "expected an error at {key}: {e:?}");
    }
    let ldap_with_token = GOOD.replace("bind_password = \"env:PW\"", "bind_password = \"env:PW\"\ntoken = \"env:T\"");
    assert!(errors(&ldap_with_token).iter().any(|e| e.key == "target[0].token"));
    let ldap_without_dn = GOOD.replace(r#"dn = '"uid=" + login + ",ou=people,dc=example,dc=org"'"#, "");
    assert!(errors(&ldap_without_dn).iter().any(|e| e.key == "target[0].dn"));
    let with_request_bytes = |bytes: &str| {
        GOOD.replace("bind_password = \"env:PW\"", &format!("bind_password = \"env:PW\"\nmax_request_bytes = {bytes}"))
    };
    let e = errors(&with_request_bytes("100"));
    assert!(e.iter().any(|e| e.key == "target[0].max_request_bytes" && e.message.contains("at least 4096")), "{e:?}");
    assert!(load(&with_request_bytes("8388608"), "roster.toml").is_ok());
}

const ENTRA_TARGET: &str = r#"[[target]]
name = "entra"
kind = "entra"
[target.entra]
tenant = "contoso.onmicrosoft.com"
client_id = "3e1c2b7a-9d4f-4e8b-a1c6-5f0d2e9b7c44"
client_secret = "env:ENTRA_SECRET"
groups = ["Licence E3"]
licensing_groups = ["Licence E3"]
[target.attributes]
userPrincipalName = 'login + "@contoso.com"'
"#;

#[test]
fn an_entra_target_gets_graph_and_its_synthetic_dns_by_default() {
    let s = load(&with_scim_target(ENTRA_TARGET), "roster.toml").unwrap();
    let entra = &s.targets[0].config;
    assert_eq!(entra.url, "https://graph.microsoft.com/v1.0");
    assert_eq!(entra.managed, ["ou=Users,o=entra", "ou=Groups,o=entra"]);
    assert_eq!(entra.dn.get_ref(), r#""employeeId=" + key + ",ou=Users,o=entra""#);
    assert_eq!((entra.login_attribute.as_str(), entra.correlate.as_str()), ("mailNickname", "employeeId"));
    let config = entra.entra.as_ref().unwrap();
    assert_eq!(config.authority, "https://login.microsoftonline.com");
    assert!(config.revoke_sessions);
    assert_eq!(entra.secret_ref().0, "env:ENTRA_SECRET");
}

#[test]
fn an_entra_target_needs_one_credential_and_refuses_ldap_keys() {
    let certificate = "client_certificate = \"app.crt\"\nclient_key = \"file:app.key\"";
    let cases = [
        (ENTRA_TARGET.replace("client_secret = \"env:ENTRA_SECRET\"", ""), "target[0].entra"),
        (
            ENTRA_TARGET
                .replace("client_secret = \"env:ENTRA_SECRET\"", &format!("client_secret = \"env:S\"\n{certificate}")),
            "target[0].entra",
        ),
        (
            ENTRA_TARGET.replace("client_secret = \"env:ENTRA_SECRET\"", "client_secret = \"s3cret\""),
            "target[0].entra.client_secret",
        ),
        (
            ENTRA_TARGET.replace("client_secret = \"env:ENTRA_SECRET\"", "client_certificate = \"app.crt\""),
            "target[0].entra",
        ),
        (ENTRA_TARGET.replace("tenant = \"contoso.onmicrosoft.com\"", "tenant = \"a/b\""), "target[0].entra.tenant"),
        (
            ENTRA_TARGET.replace("licensing_groups = [\"Licence E3\"]", "licensing_groups = [\"E5\"]"),
            "target[0].entra.licensing_groups[0]",
        ),
        (
            ENTRA_TARGET.replace("kind = \"entra\"", "kind = \"entra\"\nurl = \"http://127.0.0.1:1/v1.0\""),
            "target[0].url",
        ),
        (ENTRA_TARGET.replace("kind = \"entra\"", "kind = \"entra\"\nbind_dn = \"cn=x\""), "target[0].bind_dn"),
        (ENTRA_TARGET.replace("kind = \"entra\"", "kind = \"entra\"\nprotect = \"(x=1)\""), "target[0].protect"),
        (
            ENTRA_TARGET.replace("\ngroups = [", "\nauthority = \"ftp://login\"\ngroups = ["),
            "target[0].entra.authority",
        ),
    ];
    for (target, key) in cases {
        let e = match load(&with_scim_target(&target), "roster.toml") {
            Ok(_) => panic!("expected an error at {key} for:\n{target}"),
            Err(e) => e,
        };
        assert!(e.iter().any(|e| e.key == key), "expected an error at {key}: {e:?}");
    }
    let certificate_only = ENTRA_TARGET.replace("client_secret = \"env:ENTRA_SECRET\"", certificate);
    let s = load(&with_scim_target(&certificate_only), "roster.toml").unwrap();
    assert_eq!(s.targets[0].config.secret_ref().0, "file:app.key");
    let ldap_with_entra = format!("{GOOD}[target.entra]\ntenant = \"t\"\nclient_id = \"c\"\n");
    assert!(errors(&ldap_with_entra).iter().any(|e| e.key == "target[0].entra"));
}

const ENTRA_INBOUND_TARGET: &str = r#"[[target]]
name = "entra"
kind = "entra_inbound"
[target.entra]
tenant = "contoso.onmicrosoft.com"
client_id = "3e1c2b7a-9d4f-4e8b-a1c6-5f0d2e9b7c44"
client_secret = "env:ENTRA_SECRET"
[target.inbound]
service_principal_id = "0b7a1d7e"
job_id = "API2AAD.0a1b.9f8e"
[target.attributes]
displayName = 'given_name + " " + family_name'
"#;

#[test]
fn an_entra_inbound_target_gets_graph_synthetic_dns_and_its_limits_by_default() {
    let s = load(&with_scim_target(ENTRA_INBOUND_TARGET), "roster.toml").unwrap();
    let entra = &s.targets[0].config;
    assert_eq!(entra.url, "https://graph.microsoft.com/v1.0");
    assert_eq!(entra.dn.get_ref(), r#""externalId=" + key + ",ou=Users,o=entra-inbound""#);
    assert_eq!((entra.login_attribute.as_str(), entra.correlate.as_str()), ("userName", "externalId"));
    let inbound = entra.inbound.as_ref().expect("the job");
    assert_eq!((inbound.daily_cap, inbound.log_wait_seconds), (6000, 300));
}

#[test]
fn an_entra_inbound_target_refuses_what_the_api_cannot_do() {
    let group = "[[target.groups]]\ndn = '\"displayName=staff,ou=Groups,o=entra-inbound\"'\n";
    let cases = [
        (format!("{ENTRA_INBOUND_TARGET}{group}"), "target[0].groups"),
        (
            ENTRA_INBOUND_TARGET
                .replace("[target.attributes]", "[target.password]\ndelivery = \"none\"\n[target.attributes]"),
            "target[0].password",
        ),
        (
            ENTRA_INBOUND_TARGET.replace("[target.entra]", "disable = { lock = true }\n[target.entra]"),
            "target[0].disable.lock",
        ),
        (ENTRA_INBOUND_TARGET.replace("[target.entra]", "token = \"env:T\"\n[target.entra]"), "target[0].token"),
        (
            ENTRA_INBOUND_TARGET.replace("job_id = \"API2AAD.0a1b.9f8e\"\n", "job_id = \"\"\n"),
            "target[0].inbound.job_id",
        ),
        (ENTRA_INBOUND_TARGET.replace("job_id = ", "daily_cap = 0\njob_id = "), "target[0].inbound.daily_cap"),
        (
            ENTRA_INBOUND_TARGET
                .replace("[target.inbound]\nservice_principal_id = \"0b7a1d7e\"\njob_id = \"API2AAD.0a1b.9f8e\"\n", ""),
            "target[0].inbound",
        ),
        (
            ENTRA_INBOUND_TARGET.replace("client_secret = \"env:ENTRA_SECRET\"", "client_secret = \"s3cret\""),
            "target[0].entra.client_secret",
        ),
        (
            ENTRA_INBOUND_TARGET
                .replace("kind = \"entra_inbound\"", "kind = \"entra_inbound\"\nurl = \"http://graph.example\""),
            "target[0].url",
        ),
    ];
    for (target, key) in cases {
        let e = errors(&with_scim_target(&target));
        assert!(e.iter().any(|e| e.key == key), "expected an error at {key}: {e:?}");
    }
    let scim_with_job = SCIM_TARGET.replace(
        "[target.attributes]",
        "[target.inbound]\nservice_principal_id = \"x\"\njob_id = \"y\"\n[target.attributes]",
    );
    assert!(errors(&with_scim_target(&scim_with_job)).iter().any(|e| e.key == "target[0].inbound"));
}

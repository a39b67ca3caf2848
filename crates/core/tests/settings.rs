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
    let wrong_apply = format!("{GOOD}{SERVE}").replace("command = \"reconcile\"", "command = \"plan\"");
    assert!(errors(&wrong_apply).iter().any(|e| e.key == "serve.job[1].apply"));
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
        (SCIM_TARGET.replace("token = \"env:SCIM_TOKEN\"", "token = \"s3cret\""), "target[0].token"),
        (
            SCIM_TARGET.replace("[target.attributes]", "[target.password]\ndelivery = \"none\"\n[target.attributes]"),
            "target[0].password",
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
}

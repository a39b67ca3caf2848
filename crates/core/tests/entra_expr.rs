//! Expressions in Microsoft Entra ID's syntax (`entra:` prefix), checked against the
//! input and output examples of Microsoft's "Reference for writing expressions for
//! attribute mappings in Microsoft Entra ID" (learn.microsoft.com, entra/identity/
//! app-provisioning/functions-for-customizing-application-data, revisions of 2024-08-06 and
//! 2026-04-10, which added Len, DefaultDomain and the proxyAddresses examples). Each case
//! names the function and the example it comes from; the expressions are the documented
//! ones, with `entra:` in front.

use roster_core::expr::{Env, Expr, ExprError, ExprValue};

fn env(attributes: &[(&str, &str)]) -> Env {
    let mut env = Env::new();
    for (name, value) in attributes {
        env.set(name, ExprValue::from(*value));
    }
    env
}

fn eval_in(src: &str, env: &Env) -> Result<ExprValue, ExprError> {
    Expr::compile(&format!("entra:{src}")).unwrap_or_else(|e| panic!("{src}: {e}")).eval(env)
}

fn text_in(src: &str, attributes: &[(&str, &str)]) -> String {
    match eval_in(src, &env(attributes)) {
        Ok(ExprValue::Text(s)) => s,
        other => panic!("{src}: expected text, found {other:?}"),
    }
}

fn text(src: &str) -> String {
    text_in(src, &[])
}

fn value(src: &str) -> ExprValue {
    eval_in(src, &env(&[])).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn eval_error(src: &str, attributes: &[(&str, &str)]) -> String {
    match eval_in(src, &env(attributes)) {
        Err(ExprError::Eval { message }) => message,
        other => panic!("{src}: expected an evaluation error, found {other:?}"),
    }
}

fn compile_error(src: &str) -> String {
    match Expr::compile(&format!("entra:{src}")) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("{src}: expected an error"),
    }
}

#[test]
fn append_join_and_the_string_functions_give_the_documented_outputs() {
    // Append: "Append constant suffix to user name".
    assert_eq!(
        text_in(r#"Append([userPrincipalName], ".test")"#, &[("userPrincipalName", "John.Doe@contoso.com")]),
        "John.Doe@contoso.com.test"
    );
    // Examples: "Generate user alias by concatenating parts of first and last name".
    assert_eq!(
        text_in("Append(Mid([givenName], 1, 3), Mid([surname], 1, 5))", &[("givenName", "John"), ("surname", "Doe")]),
        "JohDoe"
    );
    // Examples: "Add a comma between last name and first name" (the empty "" is skipped).
    assert_eq!(
        text_in(r#"Join(", ", "", [surname], [givenName])"#, &[("givenName", "John"), ("surname", "Doe")]),
        "Doe, John"
    );
    // Left: Left("John Doe", 3) returns "Joh"; 0 gives "", a negative count the input.
    assert_eq!(text(r#"Left("John Doe", 3)"#), "Joh");
    assert_eq!(text(r#"Left("John Doe", 0)"#), "");
    assert_eq!(text(r#"Left("John Doe", -1)"#), "John Doe");
    assert_eq!(text(r#"Left("Jo", 5)"#), "Jo");
    assert_eq!(text("Left([absent], 2)"), "");
    // Word: Word("The quick brown fox",3," ") and Word("This,string!has&many separators",3,",!&#").
    assert_eq!(text(r#"Word("The quick brown fox",3," ")"#), "brown");
    assert_eq!(text(r#"Word("This,string!has&many separators",3,",!&#")"#), "has");
    assert_eq!(text(r#"Word("The quick", 0, " ")"#), "");
    assert_eq!(text(r#"Word("The quick", 3, " ")"#), "");
    // StripSpaces removes every space character.
    assert_eq!(text(r#"StripSpaces(" van der  Berg ")"#), "vanderBerg");
    // Mid counts from 1; past the end gives what exists.
    assert_eq!(text(r#"Mid("García", 2, 3)"#), "arc");
    assert_eq!(text(r#"Mid("García", 5, 100)"#), "ía");
    // InStr: InStr("The quick brown fox","quick") evaluates to 5,
    // InStr("repEated","e",3,vbBinaryCompare) to 7.
    assert_eq!(value(r#"InStr("The quick brown fox","quick")"#), ExprValue::Int(5));
    assert_eq!(value(r#"InStr("repEated","e",3,vbBinaryCompare)"#), ExprValue::Int(7));
    assert_eq!(value(r#"InStr("repEated","e",3,vbTextCompare)"#), ExprValue::Int(4));
    assert_eq!(value(r#"InStr("abc","z")"#), ExprValue::Int(0));
}

#[test]
fn len_gives_the_documented_lengths() {
    // Len, example 1: Len("John Doe") returns 8, Len(42568) 5, Len(42568.75) 8.
    assert_eq!(value(r#"Len("John Doe")"#), ExprValue::Int(8));
    assert_eq!(value("Len(42568)"), ExprValue::Int(5));
    assert_eq!(value("Len(42568.75)"), ExprValue::Int(8));
    // "If the string is null or empty, then it returns 0"; characters, not bytes.
    assert_eq!(value("Len([absent])"), ExprValue::Int(0));
    assert_eq!(value(r#"Len("")"#), ExprValue::Int(0));
    assert_eq!(value(r#"Len("Søren")"#), ExprValue::Int(5));
    // Len, example 2: an alias of at most 10 characters.
    let src = r#"IIF(Len([LastName]) <= 5,

  Left(Join ("",[LastName],[FirstName]),10),
  Join("", Mid([LastName],1,9), Mid([FirstName],1,1))

)"#;
    assert_eq!(text_in(src, &[("FirstName", "John"), ("LastName", "Smith")]), "SmithJohn");
    assert_eq!(text_in(src, &[("FirstName", "John"), ("LastName", "Parker")]), "ParkerJ");
    // A number with a fraction compares as a number and is no whole number.
    assert_eq!(value(r#"IIF(42568.75 > 42568, "yes", "no")"#), ExprValue::Text("yes".into()));
    assert_eq!(value(r#"IIF(-0.5 < "0", "yes", "no")"#), ExprValue::Text("yes".into()));
    assert_eq!(
        eval_error(r#"Left("abc", 1.5)"#, &[]),
        "Left(): expected a whole number as 2nd argument, found the number 1.5"
    );
}

#[test]
fn case_functions_follow_dotnet() {
    // ToLower: "Convert generated userPrincipalName (UPN) value to lower case".
    assert_eq!(
        text_in(
            r#"ToLower(Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName], [PreferredLastName]))), "contoso.com"))"#,
            &[("PreferredFirstName", "John"), ("PreferredLastName", "Smith")]
        ),
        "john.smith@contoso.com"
    );
    // .NET maps one character to one: ß stays ß in upper case (roster's upper() gives SS).
    assert_eq!(text(r#"ToUpper("straße")"#), "STRAßE");
    // The culture argument: Turkish has a dotted capital İ and a dotless ı.
    assert_eq!(text(r#"ToUpper("istanbul", "tr-TR")"#), "İSTANBUL");
    assert_eq!(text(r#"ToLower("ISPARTA", "tr-TR")"#), "ısparta");
    assert_eq!(text(r#"ToLower("ISPARTA", "en-US")"#), "isparta");
    assert!(eval_error(r#"ToLower("A", "not a culture")"#, &[]).contains("expected a culture name"));
    // PCase: the three documented rows.
    assert_eq!(text_in("PCase([firstName])", &[("firstName", "PABLO GONSALVES (SECOND)")]), "Pablo Gonsalves (Second)");
    assert_eq!(text_in(r#"PCase([lastName]," '-")"#, &[("lastName", "PINTO-DE'SILVA")]), "Pinto-De'Silva");
    assert_eq!(
        text_in(r#"PCase(Join(" ",[firstName],[lastName]))"#, &[("firstName", "GREGORY"), ("lastName", "JAMES")]),
        "Gregory James"
    );
    // Without separators PCase is .NET's ToTitleCase: an apostrophe does not end a word,
    // a hyphen does (roster's pcase() gives O'Brien).
    assert_eq!(text(r#"PCase("O'BRIEN-SMITH")"#), "O'brien-Smith");
}

#[test]
fn normalize_diacritics_uses_entras_table() {
    // NormalizeDiacritics: "Remove diacritics from a string", Zoë -> Zoe.
    assert_eq!(text_in("NormalizeDiacritics([givenName])", &[("givenName", "Zoë")]), "Zoe");
    // The table's rows that differ from roster's normalize_diacritics.
    assert_eq!(text(r#"NormalizeDiacritics("Søren Ærø")"#), "Soeren AEroe");
    assert_eq!(text(r#"NormalizeDiacritics("Straße Łukasz")"#), "Strasse Lukasz");
    // Letters with combining marks that the table lists as sequences: ā́ (ā + acute), a̱.
    assert_eq!(text("NormalizeDiacritics(\"ā\u{301}a\u{331}\")"), "aa");
    // What the table does not list stays as it is (ó is in it).
    assert_eq!(text(r#"NormalizeDiacritics("Đorđe Þór")"#), "Đorđe Þor");
}

#[test]
fn conversions_give_the_documented_outputs() {
    // ConvertToBase64("Hello world!") returns "SABlAGwAbABvACAAdwBvAHIAbABkACEA".
    assert_eq!(text(r#"ConvertToBase64("Hello world!")"#), "SABlAGwAbABvACAAdwBvAHIAbABkACEA");
    // ConvertToUTF8Hex("Hello world!") returns 48656C6C6F20776F726C6421.
    assert_eq!(text(r#"ConvertToUTF8Hex("Hello world!")"#), "48656C6C6F20776F726C6421");
    // Examples: "Generate an ID for a user based on their Microsoft Entra object ID". The
    // reference's sample output belongs to another object ID than the input it shows, so the
    // expected value here is the one its input gives.
    assert_eq!(
        text_in(
            r#"Join("", 1000, Replace(ConvertToUTF8Hex([objectId]), , "[a-zA-Z_]*", , "", , ))"#,
            &[("objectId", "00aa00aa-bb11-cc22-dd33-44ee44ee44ee")]
        ),
        "100030306161303061612626231312636332322646433332343465653434656534346565"
    );
    // BitAnd(&HF, &HF7) returns 7.
    assert_eq!(value("BitAnd(&HF, &HF7)"), ExprValue::Int(7));
    assert_eq!(value(r#"BitAnd([uac], 2)"#.replace("[uac]", "\"514\"").as_str()), ExprValue::Int(2));
    // CStr([dn]) returns "cn=Joe,dc=contoso,dc=com".
    assert_eq!(text_in("CStr([dn])", &[("dn", "cn=Joe,dc=contoso,dc=com")]), "cn=Joe,dc=contoso,dc=com");
    assert_eq!(text("CStr(42)"), "42");
    assert_eq!(text("CStr(IsNull([absent]))"), "True");
    // CBool([attribute1] = [attribute2]) is True when both attributes are equal.
    let same = env(&[("attribute1", "x"), ("attribute2", "x")]);
    let different = env(&[("attribute1", "x"), ("attribute2", "y")]);
    assert_eq!(eval_in("CBool([attribute1] = [attribute2])", &same), Ok(ExprValue::Bool(true)));
    assert_eq!(eval_in("CBool([attribute1] = [attribute2])", &different), Ok(ExprValue::Bool(false)));
    assert_eq!(value("CBool(0)"), ExprValue::Bool(false));
    // Not: True gives False, anything else True.
    assert_eq!(value(r#"Not("True")"#), ExprValue::Bool(false));
    assert_eq!(value(r#"Not("False")"#), ExprValue::Bool(true));
}

#[test]
fn null_tests_treat_an_empty_attribute_as_absent() {
    let person = env(&[("displayName", ""), ("mail", ""), ("userPrincipalName", "John.Doe@contoso.com")]);
    // IsNull([displayName]) / IsNullOrEmpty([displayName]): True when the attribute is absent.
    assert_eq!(eval_in("IsNull([displayName])", &person), Ok(ExprValue::Bool(true)));
    assert_eq!(eval_in("IsNullOrEmpty([displayName])", &person), Ok(ExprValue::Bool(true)));
    assert_eq!(eval_in("IsPresent([displayName])", &person), Ok(ExprValue::Bool(false)));
    assert_eq!(eval_in("IsPresent([userPrincipalName])", &person), Ok(ExprValue::Bool(true)));
    // A literal "" is present but empty, as in Entra.
    assert_eq!(value(r#"IsNull("")"#), ExprValue::Bool(false));
    assert_eq!(value(r#"IsNullOrEmpty("")"#), ExprValue::Bool(true));
    assert_eq!(value(r#"IsString("x")"#), ExprValue::Bool(true));
    assert_eq!(value("IsString(7)"), ExprValue::Bool(false));
    // Coalesce: "Flow mail value if not NULL, otherwise flow userPrincipalName".
    assert_eq!(
        eval_in("Coalesce([mail],[userPrincipalName])", &person),
        Ok(ExprValue::Text("John.Doe@contoso.com".into()))
    );
    assert_eq!(eval_in("Coalesce([mail],[displayName])", &person), Ok(ExprValue::Null));
    assert_eq!(eval_in(r#"Coalesce([mail],"")"#, &person), Ok(ExprValue::Text(String::new())));
    // Coalesce: "If all arguments are NULL and defaultValue is present, the defaultValue is returned".
    assert_eq!(eval_in(r#"Coalesce([mail],[displayName],"none")"#, &person), Ok(ExprValue::Text("none".into())));
    // IsPresent([directManager]): True if the attribute isn't null or empty.
    assert_eq!(eval_in("IsPresent([directManager])", &env(&[("directManager", "1001")])), Ok(ExprValue::Bool(true)));
    assert_eq!(eval_in("IsPresent([directManager])", &person), Ok(ExprValue::Bool(false)));
}

#[test]
fn switch_and_iif_choose_as_documented() {
    // Switch: "Replace a value based on predefined set of options".
    let src = r#"Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney","QLD", "Australia/Brisbane", "SA", "Australia/Adelaide")"#;
    assert_eq!(text_in(src, &[("state", "QLD")]), "Australia/Brisbane");
    assert_eq!(text_in(src, &[("state", "WA")]), "Australia/Sydney");
    // IIF's recommended workaround: Switch([country],[country],"","Other").
    assert_eq!(text_in(r#"Switch([country],[country],"","Other")"#, &[("country", "")]), "Other");
    assert_eq!(text_in(r#"Switch([country],[country],"","Other")"#, &[("country", "NO")]), "NO");
    // Switch compares case-sensitively; an empty default gives nothing.
    assert_eq!(eval_in(r#"Switch([flag], , "true", "1")"#, &env(&[("flag", "TRUE")])), Ok(ExprValue::Null));
    // IIF([country]="USA",[country],[department]).
    let src = r#"IIF([country]="USA",[country],[department])"#;
    assert_eq!(text_in(src, &[("country", "USA"), ("department", "Sales")]), "USA");
    assert_eq!(text_in(src, &[("country", "NO"), ("department", "Sales")]), "Sales");
    // IIF's AND and OR through nesting.
    let and = r#"IIF([country]="USA",IIF([state]="CA","True","False"),"False")"#;
    assert_eq!(text_in(and, &[("country", "USA"), ("state", "CA")]), "True");
    assert_eq!(text_in(and, &[("country", "USA"), ("state", "NY")]), "False");
    let or = r#"IIF([country]="USA","True",IIF([state]="CA","True","False"))"#;
    assert_eq!(text_in(or, &[("country", "NO"), ("state", "CA")]), "True");
    // Comparisons: numbers as numbers, text as text.
    assert_eq!(value(r#"IIF("10" > "9", "yes", "no")"#), ExprValue::Text("yes".into()));
    assert_eq!(value(r#"IIF("b" >= "a", "yes", "no")"#), ExprValue::Text("yes".into()));
    assert_eq!(value(r#"IIF("a" <> "a", "yes", "no")"#), ExprValue::Text("no".into()));
    // IgnoreFlowIfNullOrEmpty, example 2: Switch gives "", so the attribute is not written.
    let ignore = Expr::compile(
        r#"entra:IgnoreFlowIfNullOrEmpty(Switch([prefix], "", "3443", "Dr.", "3444", "Prof.", "3445", "Prof. Dr."))"#,
    )
    .unwrap();
    assert!(ignore.ignores_flow_if_empty());
    assert_eq!(ignore.eval(&env(&[("prefix", "3444")])), Ok(ExprValue::Text("Prof.".into())));
    assert_eq!(ignore.eval(&env(&[("prefix", "1")])), Ok(ExprValue::Text(String::new())));
    assert!(!Expr::compile("entra:[prefix]").unwrap().ignores_flow_if_empty());
    // IgnoreFlowIfNullOrEmpty, example 1.
    let ignore = Expr::compile("entra:IgnoreFlowIfNullOrEmpty([department])").unwrap();
    assert!(ignore.ignores_flow_if_empty());
    assert_eq!(ignore.eval(&env(&[("department", "")])), Ok(ExprValue::Null));
    // "Don't use IgnoreFlowIfNullOrEmpty as the condition argument to IIF": the supported
    // and the unsupported form the reference gives.
    let ignore = Expr::compile(r#"entra:IgnoreFlowIfNullOrEmpty(IIF([country]="USA",[region],""))"#).unwrap();
    assert_eq!(ignore.eval(&env(&[("country", "USA"), ("region", "West")])), Ok(ExprValue::Text("West".into())));
    assert_eq!(ignore.eval(&env(&[("country", "NO"), ("region", "West")])), Ok(ExprValue::Text(String::new())));
    assert!(
        compile_error(r#"IIF(IgnoreFlowIfNullOrEmpty([country]),[country],"Other")"#)
            .contains("IgnoreFlowIfNullOrEmpty(): must be the whole expression")
    );
}

#[test]
fn switch_notes_and_cautions_give_what_they_describe() {
    // Switch, note: a case-insensitive comparison through ToLower.
    let src = r#"Switch(ToLower([statusFlag]), "0", "true", "1", "false", "0")"#;
    for (flag, expected) in [("True", "1"), ("true", "1"), ("TRUE", "1"), ("False", "0"), ("maybe", "0")] {
        assert_eq!(text_in(src, &[("statusFlag", flag)]), expected, "{flag}");
    }
    // Switch, caution: an empty source matches the key "".
    let src = r#"Switch([statusFlag], "Default Value", "true", "1", "", "0")"#;
    assert_eq!(text_in(src, &[("statusFlag", "")]), "0");
    assert_eq!(text_in(src, &[("statusFlag", "true")]), "1");
    assert_eq!(text_in(src, &[("statusFlag", "no")]), "Default Value");
    // Switch, caution: the resolution's IIF form and its IgnoreFlowIfNullOrEmpty form.
    let iif = r#"IIF([companyName] = "Company A", "A", IIF([companyName] = "Company B", "B", "External"))"#;
    let switch = r#"IgnoreFlowIfNullOrEmpty(switch([companyName], [companyName], "Company A", "A", "Company B", "B"))"#;
    for (company, by_iif, by_switch) in
        [("Company A", "A", "A"), ("Company B", "B", "B"), ("Contoso", "External", "Contoso")]
    {
        assert_eq!(text_in(iif, &[("companyName", company)]), by_iif);
        assert_eq!(text_in(switch, &[("companyName", company)]), by_switch);
    }
}

#[test]
fn proxy_addresses_are_built_as_the_reference_shows() {
    let person = [("givenName", "John"), ("surname", "Doe")];
    // "Set a primary SMTP address in proxyAddresses".
    assert_eq!(
        text_in(r#"Append("SMTP:", Join("@", Join(".", [givenName], [surname]), "contoso.com"))"#, &person),
        "SMTP:John.Doe@contoso.com"
    );
    // "Set primary and alias addresses in proxyAddresses".
    let src = r#"Split(
    Join(",",
        Append("smtp:", Join("@", NormalizeDiacritics(StripSpaces(Join(".", [givenName], [surname]))), "contoso.onmicrosoft.com")),
        Append("SMTP:", Join("@", NormalizeDiacritics(StripSpaces(Join(".", [givenName], [surname]))), "contoso.com"))
    ),
    ","
)"#;
    assert_eq!(
        eval_in(src, &env(&person)),
        Ok(ExprValue::List(vec!["smtp:John.Doe@contoso.onmicrosoft.com".into(), "SMTP:John.Doe@contoso.com".into()]))
    );
}

#[test]
fn replace_takes_each_documented_form() {
    // Example 1: oldValue and replacementValue.
    let src = r#"Replace([BusinessTitle],"Product Developer", , , "Software Engineer", , )"#;
    assert_eq!(text_in(src, &[("BusinessTitle", "Product Developer")]), "Software Engineer");
    // Example 2: oldValue and template.
    let src = r#"Replace([UserID],"<username>", , , , , "<username>@contoso.com")"#;
    assert_eq!(text_in(src, &[("UserID", "jsmith")]), "jsmith@contoso.com");
    // Example 3: regexPattern and replacementValue with a group name.
    let src = r#"Replace([telephoneNumber], , "\\+(?<isdCode>\\d* )(?<phoneNumber>\\d{10})", , "${phoneNumber}", , )"#;
    assert_eq!(text_in(src, &[("telephoneNumber", "+91 9998887777")]), "9998887777");
    // The reference prints 19998887777 here, but its pattern does not match `+`, which
    // .NET's Regex.Replace therefore keeps, as roster does.
    let src = r#"Replace([mobile], , "[()\\s-]+", , "", , )"#;
    assert_eq!(text_in(src, &[("mobile", "+1 (999) 888-7777")]), "+19998887777");
    // Example 4: regexPattern, regexGroupName and replacementValue.
    let src = r#"Replace([AddressLineData], ,"(?<streetNumber>^\\d*)","streetNumber", "888", , )"#;
    assert_eq!(text_in(src, &[("AddressLineData", "545 Tremont Street")]), "888 Tremont Street");
    let src = r#"Replace([userPrincipalName], , "(?<Suffix>@(.)*)", "Suffix", "", , )"#;
    assert_eq!(text_in(src, &[("userPrincipalName", "jsmith@contoso.com")]), "jsmith");
    // Example 5: regexPattern, regexGroupName and replacementAttributeName.
    let src =
        r#"Replace([telephoneNumber], , "\\+(?<isdCode>\\d* )(?<phoneNumber>\\d{10})", "phoneNumber" , , [mobile], )"#;
    assert_eq!(text_in(src, &[("telephoneNumber", ""), ("mobile", "+91 8887779999")]), "8887779999");
    assert_eq!(text_in(src, &[("telephoneNumber", "+47 1"), ("mobile", "+91 8887779999")]), "+47 1");
    // Example 6: remove what matches.
    let src = r#"Replace([mailNickname], , "[a-zA-Z_]*", , "", , )"#;
    assert_eq!(text_in(src, &[("mailNickname", "john_doe72")]), "72");
    // Examples: "Strip known domain name".
    let src = r#"Replace([mail], "@contoso.com", , ,"", ,)"#;
    assert_eq!(text_in(src, &[("mail", "john.doe@contoso.com")]), "john.doe");
}

#[test]
fn lists_split_count_and_pick() {
    let mut person = env(&[]);
    person.set(
        "proxyAddresses",
        ExprValue::List(vec!["SMTP:a@x.org".into(), "smtp:b@x.org".into(), "SMTP:a@x.org".into()]),
    );
    // Split: "Split a string into a multi-valued array".
    assert_eq!(
        eval_in(
            r#"Split([extensionAttribute5], ",")"#,
            &env(&[("extensionAttribute5", "PermissionSetOne, PermissionSetTwo")])
        ),
        Ok(ExprValue::List(vec!["PermissionSetOne".into(), "PermissionSetTwo".into()]))
    );
    // Item([proxyAddresses], 1) returns the first item.
    assert_eq!(eval_in("Item([proxyAddresses], 1)", &person), Ok(ExprValue::Text("SMTP:a@x.org".into())));
    assert_eq!(eval_in("Item([proxyAddresses], 0)", &person), Ok(ExprValue::Null));
    assert_eq!(eval_in("Count([proxyAddresses])", &person), Ok(ExprValue::Int(3)));
    assert_eq!(eval_in("Count([absent])", &person), Ok(ExprValue::Int(0)));
    // RemoveDuplicates([proxyAddresses]).
    assert_eq!(
        eval_in("RemoveDuplicates([proxyAddresses])", &person),
        Ok(ExprValue::List(vec!["SMTP:a@x.org".into(), "smtp:b@x.org".into()]))
    );
    // Join: every value of a multi-valued attribute is joined.
    assert_eq!(
        eval_in(r#"Join(";", [proxyAddresses], "c@x.org")"#, &person).unwrap().into_text().unwrap(),
        "SMTP:a@x.org;smtp:b@x.org;SMTP:a@x.org;c@x.org"
    );
    let error = eval_in("Left([proxyAddresses], 1)", &person).unwrap_err().to_string();
    assert_eq!(
        error,
        "Left(): expected text as 1st argument, found a list of 3 values (Join or Item take values from a list)"
    );
}

#[test]
fn dates_follow_the_documented_examples() {
    // CDate examples 1 to 3: the UTC equivalent, written M/d/yyyy h:mm:ss tt.
    assert_eq!(text_in("CDate([StatusHireDate])", &[("StatusHireDate", "2020-03-16-07:00")]), "3/16/2020 7:00:00 AM");
    assert_eq!(text(r#"CDate("2021-06-30+08:00")"#), "6/29/2021 4:00:00 PM");
    assert_eq!(text(r#"CDate("2009-06-15T01:45:30-07:00")"#), "6/15/2009 8:45:30 AM");
    // DateAdd example 1, every row.
    let hire = [("StatusHireDate", "2012-03-16-07:00")];
    for (interval, n, expected) in [
        ("d", 7, "3/23/2012 7:00:00 AM"),
        ("d", -10, "3/6/2012 7:00:00 AM"),
        ("ww", 2, "3/30/2012 7:00:00 AM"),
        ("m", 10, "1/16/2013 7:00:00 AM"),
        ("yyyy", 2, "3/16/2014 7:00:00 AM"),
    ] {
        let src = format!(r#"DateAdd("{interval}", {n}, CDate([StatusHireDate]))"#);
        assert_eq!(text_in(&src, &hire), expected, "{src}");
    }
    // Visual Basic's month arithmetic: a month after 31 January is February's last day.
    assert_eq!(text(r#"DateAdd("m", 1, CDate("2024-01-31"))"#), "2/29/2024 12:00:00 AM");
    assert_eq!(text(r#"DateAdd("yyyy", -1, CDate("2024-02-29"))"#), "2/28/2023 12:00:00 AM");
    // DateDiff example 1, every row.
    for (interval, first, second, expected) in [
        ("d", "2021-08-18+08:00", "2021-08-31+08:00", 13),
        ("d", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -3449),
        ("ww", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -493),
        ("m", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -113),
        ("yyyy", "8/25/2021 5:41:18 PM", "2012-03-16-07:00", -9),
        ("d", "2021-08-31+08:00", "2021-08-31+08:00", 0),
        ("h", "2021-08-24", "2021-08-25", 24),
        ("n", "2021-08-24", "2021-08-25", 1440),
        ("s", "2021-08-24", "2021-08-25", 86400),
    ] {
        let src = format!(r#"DateDiff("{interval}", CDate("{first}"), CDate("{second}"))"#);
        assert_eq!(value(&src), ExprValue::Int(expected), "{src}");
    }
    // DateFromNum(129699324000000000): January 1, 2012 at 11:00PM.
    assert_eq!(text("DateFromNum(129699324000000000)"), "1/1/2012 11:00:00 PM");
    assert_eq!(value(r#"NumFromDate("2012-01-01T23:00:00Z")"#), ExprValue::Int(129_699_324_000_000_000));
    // NumFromDate, the Workday example: ContractEndDate 2020-12-31-08:00 at 23:59:59-08:00,
    // which is 2021-01-01 07:59:59 UTC.
    let src = r#"NumFromDate(Join("", FormatDateTime([ContractEndDate], ,"yyyy-MM-ddzzz", "yyyy-MM-dd"), " 23:59:59-08:00"))"#;
    assert_eq!(
        eval_in(src, &env(&[("ContractEndDate", "2020-12-31-08:00")])),
        Ok(ExprValue::Int(132_539_615_990_000_000))
    );
    // The SuccessFactors example.
    let src =
        r#"NumFromDate(Join("",FormatDateTime([endDate], ,"M/d/yyyy hh:mm:ss tt","yyyy-MM-dd")," 23:59:59-08:00"))"#;
    assert_eq!(
        eval_in(src, &env(&[("endDate", "12/31/2020 12:00:00 AM")])),
        Ok(ExprValue::Int(132_539_615_990_000_000))
    );
    // FormatDateTime: "Output date as a string in a certain format".
    assert_eq!(
        text_in(
            r#"FormatDateTime([extensionAttribute1], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#,
            &[("extensionAttribute1", "20150123105347.1Z")]
        ),
        "2015-01-23"
    );
    // Entra's older three-argument form, and an absent date giving nothing.
    assert_eq!(text_in(r#"FormatDateTime([d], "yyyy-MM-dd", "dd.MM.yyyy")"#, &[("d", "2024-03-01")]), "01.03.2024");
    assert_eq!(eval_in(r#"FormatDateTime([d], "yyyy-MM-dd", "dd.MM.yyyy")"#, &env(&[("d", "")])), Ok(ExprValue::Null));
    assert!(
        eval_error(r#"FormatDateTime([d], "yyyy-MM-dd", "dd.MM.yyyy")"#, &[("d", "01.03.2024")])
            .contains("expected a date like \"yyyy-MM-dd\"")
    );
}

#[test]
fn now_is_the_run_day_and_guid_is_stable_per_person() {
    // Now(): the as-of day at midnight UTC, never the clock.
    let run = env(&[("today", "2026-01-15"), ("StatusHireDate", "2026-01-22"), ("key", "00042")]);
    assert_eq!(eval_in("Now()", &run), Ok(ExprValue::Text("1/15/2026 12:00:00 AM".into())));
    // DateDiff example 2, with Now().
    let src = r#"Switch([Active], , "1", IIF(DateDiff("d", Now(), CDate([StatusHireDate])) > 5, "False", "True"), "0", "False")"#;
    let mut active = run.clone();
    active.set("Active", ExprValue::from("1"));
    assert_eq!(eval_in(src, &active), Ok(ExprValue::Text("False".into())));
    assert_eq!(Expr::compile(&format!("entra:{src}")).unwrap().variables(), ["Active", "today", "StatusHireDate"]);
    // Guid(): the format of the documented sample, the same for a person every run.
    let guid = eval_in("Guid()", &run).unwrap().into_text().unwrap();
    assert_eq!(guid.len(), 36);
    assert_eq!(guid.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    assert_eq!(eval_in("Guid()", &run).unwrap().into_text().unwrap(), guid);
    let other = env(&[("key", "00043")]);
    assert_ne!(eval_in("Guid()", &other).unwrap().into_text().unwrap(), guid);
}

#[test]
fn select_unique_value_becomes_ordered_candidates() {
    // SelectUniqueValue: "Generate unique value for userPrincipalName (UPN) attribute".
    let src = r#"entra:SelectUniqueValue(
        Join("@", NormalizeDiacritics(StripSpaces(Join(".",  [PreferredFirstName], [PreferredLastName]))), "contoso.com"),
        Join("@", NormalizeDiacritics(StripSpaces(Join(".",  Mid([PreferredFirstName], 1, 1), [PreferredLastName]))), "contoso.com"),
        Join("@", NormalizeDiacritics(StripSpaces(Join(".",  Mid([PreferredFirstName], 1, 2), [PreferredLastName]))), "contoso.com")
    )"#;
    let person = env(&[("PreferredFirstName", "John"), ("PreferredLastName", "Smith")]);
    let candidates = Expr::compile(src).unwrap().alternatives().unwrap();
    let values: Vec<String> = candidates.iter().map(|c| c.eval(&person).unwrap().into_text().unwrap()).collect();
    assert_eq!(values, ["John.Smith@contoso.com", "J.Smith@contoso.com", "Jo.Smith@contoso.com"]);
    assert!(candidates[1].source().starts_with("entra: Join(\"@\""));
    // Anywhere else it is an error that says where uniqueness lives in roster.
    let known = |_: &str| true;
    let error = Expr::compile(src).unwrap().check(&known).unwrap_err().to_string();
    assert!(error.contains("use it as a [login] candidate"), "{error}");
    assert!(compile_error(r#"Join(".", SelectUniqueValue("a", "b"))"#).contains("must be the whole expression"));
    assert!(compile_error(r#"SelectUniqueValue("a")"#).contains("expected at least 2 arguments, found 1"));
}

#[test]
fn parse_errors_say_where() {
    let cases = [
        (
            r#"Join(".", [given_name]"#,
            "1:29: expected `,` or `)` after an argument of Join(), found the end of the expression",
        ),
        (
            r#"Join(".", given_name)"#,
            "1:17: expected a function call, an [attribute], \"text\" or a number, found the name `given_name` (an attribute is written in square brackets: [given_name])",
        ),
        (r#"Left("abc, 1)"#, "1:12: expected the closing `\"` of this text"),
        (r#"Left("a\d", 1)"#, "1:14: expected `\\\"` or `\\\\` after a backslash, found `\\d`"),
        ("Left([given_name, 1)", "1:12: expected the closing `]` of this attribute"),
        ("Left([given_name], 1.)", "1:28: expected digits after the decimal point, found `)`"),
        (r#"Left("a", 1) "b""#, "1:20: expected the end of the expression, found `\"`"),
        ("", "1:7: expected an expression after `entra:`, found nothing"),
        (r#"Replace([a], "x", , , , , )"#, "1:7: Replace(): expected one of Entra's forms"),
        (
            r#"Replace([a], , "(", , "", , )"#,
            "1:7: Replace(): expected a regular expression as 3rd argument, found \"(\"",
        ),
        (r#"Switch([a], "d", "k")"#, "1:7: Switch(): expected at least 4 arguments, found 3"),
        (
            r#"Switch([a], "d", "k", "v", "k2")"#,
            "1:7: Switch(): expected the source, the default, then key and value pairs",
        ),
        ("Left([a])", "1:7: Left(): expected 2 arguments, found 1"),
        ("Join(\".\",\n  [a],\n  Left([b]))", "3:3: Left(): expected 2 arguments, found 1"),
        ("RandomString(6,3,0,0,3)", "1:7: RandomString() is not supported: a random value would change on every run"),
        (r#"Redact([userPrincipalName])"#, "1:7: Redact() is not supported"),
        ("SingleAppRoleAssignment([appRoleAssignments])", "is not supported: it reads the app role assignments"),
        (
            r#"Join("@", [mailNickname], DefaultDomain())"#,
            "1:33: DefaultDomain() is not supported: it gives the default verified domain of the Entra tenant",
        ),
    ];
    for (src, expected) in cases {
        let found = compile_error(src);
        assert!(found.contains(expected), "{src}:\n  expected {expected}\n  found    {found}");
    }
    assert_eq!(compile_error("Lft([a], 1)"), "unknown function `Lft` (did you mean `Left`?)");
    assert_eq!(compile_error("lower([a])"), "unknown function `lower` (did you mean `ToLower`?)");
    // Function names are matched in any case, as Entra's own examples write `switch(...)`.
    assert_eq!(text_in(r#"switch([c], "B", "Company A", "A")"#, &[("c", "Company A")]), "A");
}

#[test]
fn check_reports_unknown_attributes_with_a_suggestion() {
    let known = |name: &str| ["given_name", "family_name", "today", "key"].contains(&name);
    let expr = Expr::compile(r#"entra:Join(".", [givenName], [family_name])"#).unwrap();
    assert_eq!(
        expr.check(&known).unwrap_err().to_string(),
        "unknown variable `givenName` (did you mean `given_name`?)"
    );
    let expr = Expr::compile(r#"entra:Join(".", [given_name], [family_name])"#).unwrap();
    assert_eq!(expr.check(&known), Ok(()));
    assert_eq!(expr.variables(), ["given_name", "family_name"]);
    assert_eq!(expr.functions(), ["Join"]);
    assert_eq!(expr.source(), r#"entra:Join(".", [given_name], [family_name])"#);
}

#[test]
fn errors_on_a_persons_data_name_the_function() {
    assert_eq!(
        eval_error("Left([a], [n])", &[("a", "x"), ("n", "two")]),
        "Left(): expected a whole number as 2nd argument, found \"two\""
    );
    assert!(eval_error("CDate([d])", &[("d", "yesterday")]).starts_with("CDate(): expected a date such as"));
    assert_eq!(eval_error("CDate([d])", &[("d", "")]), "CDate(): expected a date as 1st argument, found nothing");
    assert!(eval_error(r#"DateAdd("x", 1, CDate("2024-01-01"))"#, &[]).contains("expected the interval"));
    assert!(eval_error(r#"IIF("maybe", "a", "b")"#, &[]).contains("expected True or False as 1st argument"));
}

#[test]
fn deep_nesting_and_long_input_are_refused_without_overflow() {
    let deep = format!("{}\"x\"{}", "ToLower(".repeat(40), ")".repeat(40));
    assert!(compile_error(&deep).contains("nests more than 32 levels"));
    let ok = format!("{}\"x\"{}", "ToLower(".repeat(20), ")".repeat(20));
    assert_eq!(text(&ok), "x");
    let long = format!("Join(\"\", {})", vec!["\"abcdefgh\""; 1000].join(", "));
    assert!(compile_error(&long).contains("more than the 10000 Entra (and roster) take"));
    // Entra's limit is 10,000 characters, so a mapping it took is taken (CEL stops at 8192 bytes).
    let within = format!("Join(\"\", {})", vec!["\"ä\""; 1500].join(", "));
    assert!(within.len() > 8192 && within.chars().count() < 10_000);
    assert_eq!(text(&within).chars().count(), 1500);
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    /// Every function with the fewest and most arguments it takes (7 for "any number").
    #[rustfmt::skip]
    const FUNCTIONS: &[(&str, usize, usize)] = &[
        ("Append", 2, 2), ("BitAnd", 2, 2), ("CBool", 1, 1), ("CDate", 1, 1), ("Coalesce", 1, 7),
        ("ConvertToBase64", 1, 1), ("ConvertToUTF8Hex", 1, 1), ("Count", 1, 1), ("CStr", 1, 1),
        ("DateAdd", 3, 3), ("DateDiff", 3, 3), ("DateFromNum", 1, 1), ("FormatDateTime", 3, 4), ("Guid", 0, 0),
        ("IIF", 3, 3), ("InStr", 2, 4), ("IsNull", 1, 1), ("IsNullOrEmpty", 1, 1), ("IsPresent", 1, 1),
        ("IsString", 1, 1), ("Item", 2, 2), ("Join", 2, 7), ("Left", 2, 2), ("Len", 1, 1), ("Mid", 3, 3),
        ("NormalizeDiacritics", 1, 1), ("Not", 1, 1), ("Now", 0, 0), ("NumFromDate", 1, 1), ("PCase", 1, 2),
        ("RemoveDuplicates", 1, 1), ("Replace", 7, 7), ("Split", 2, 2), ("StripSpaces", 1, 1), ("Switch", 4, 6),
        ("ToLower", 1, 2), ("ToUpper", 1, 2), ("Word", 3, 3),
    ];

    fn leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("[name]".to_owned()),
            Just("[list]".to_owned()),
            Just("[absent]".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            prop::sample::select(vec![
                "\"d\"",
                "\"yyyy\"",
                "\"M/d/yyyy h:mm:ss tt\"",
                "\"yyyy-MM-ddzzz\"",
                "\"\"",
                "vbTextCompare"
            ])
            .prop_map(str::to_owned),
            "[^\"\\\\]{0,12}".prop_map(|s| format!("\"{s}\"")),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 40, 8, |inner| {
            (
                prop::sample::select(FUNCTIONS),
                any::<usize>(),
                prop::collection::vec(prop::option::weighted(0.9, inner.clone()), 7),
            )
                .prop_map(|((name, min, max), pick, args)| {
                    let count = min + pick % (max - min + 1);
                    let mut args: Vec<String> = args.into_iter().take(count).map(Option::unwrap_or_default).collect();
                    // `F()` is a call without arguments: a single one is never left empty.
                    if let [only] = args.as_mut_slice()
                        && only.is_empty()
                    {
                        *only = "\"\"".to_owned();
                    }
                    format!("{name}({})", args.join(", "))
                })
                .boxed()
                .prop_union((inner.clone(), inner).prop_map(|(a, b)| format!("CBool({a} >= {b})")).boxed())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn evaluating_any_composition_gives_a_value_or_an_error(src in expression()) {
            let mut person = env(&[("name", "Ærø O'Brien-Smith 2012-03-16-07:00"), ("today", "2026-01-15"), ("key", "7")]);
            person.set("list", ExprValue::List(vec!["a".into(), "ß".into(), "a".into()]));
            // Every generated call has a number of arguments its function takes; only
            // Switch's odd counts and Replace's forms may be refused.
            match Expr::compile(&format!("entra:{src}")) {
                Ok(expr) => {
                    let _ = expr.eval(&person);
                }
                Err(error) => {
                    let message = error.to_string();
                    prop_assert!(message.contains("Switch()") || message.contains("Replace()"), "{src}: {message}");
                }
            }
        }

        #[test]
        fn parsing_any_text_gives_an_expression_or_an_error(src in "\\PC{0,60}") {
            let _ = Expr::compile(&format!("entra:{src}"));
        }
    }
}

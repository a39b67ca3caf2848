//! HTML by hand: one escaping function that every value from data goes through, and the page
//! layout. Small enough that a template crate would add more than it saves.

use std::fmt::Write;

/// Escapes text for an HTML element or a double-quoted attribute.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for one component of a URL path or query.
pub(super) fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Who is logged in, for the header: name, role, and the CSRF token of the logout form.
pub(super) struct Who<'a> {
    pub(super) name: &'a str,
    pub(super) role: &'a str,
    pub(super) csrf: &'a str,
}

/// A whole page; `body` is HTML already escaped.
pub(super) fn layout(title: &str, who: Option<Who<'_>>, body: &str) -> String {
    let nav = match who {
        None => String::new(),
        Some(who) => format!(
            "<a href=\"/\">Dashboard</a><a href=\"/runs\">Runs</a><a href=\"/persons\">Persons</a>\
             <a href=\"/audit\">Audit</a><span class=\"who\">{} ({}) {}</span>",
            escape(who.name),
            escape(who.role),
            form("/logout", who.csrf, "", "Log out")
        ),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - roster</title>\
         <link rel=\"stylesheet\" href=\"/console.css\"></head><body><header><strong>roster</strong>{nav}</header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    )
}

/// A POST form carrying the session's CSRF token; `fields` is HTML already escaped.
pub(super) fn form(action: &str, csrf: &str, fields: &str, button: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{fields}\
         <button type=\"submit\">{}</button></form>",
        escape(action),
        escape(csrf),
        escape(button)
    )
}

pub(super) fn login_form(problem: Option<&str>) -> String {
    let problem = problem.map(|p| format!("<p class=\"error\">{}</p>", escape(p))).unwrap_or_default();
    format!(
        "{problem}<form method=\"post\" action=\"/login\"><p>Log in with a token from <code>[[serve.token]]</code> \
         (the console keeps a session, never the token).</p><label>Token <input type=\"password\" name=\"token\" \
         id=\"token\" autocomplete=\"off\" required></label> <button type=\"submit\" id=\"login\">Log in</button></form>"
    )
}

/// A table; cells are HTML already escaped.
pub(super) fn table(headings: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from("<table><tr>");
    for h in headings {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(url("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}

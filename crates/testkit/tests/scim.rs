//! The SCIM server harness: an empty `scim2-server` on a free port that answers only with its own
//! bearer token, and is gone when dropped. Fails, never skips, when the server is not installed.

use std::io::{Read, Write};
use std::net::TcpStream;

use roster_testkit::ScimServer;

/// `method path` with an optional bearer token and JSON body: the status and the body.
fn request(server: &ScimServer, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).expect("the server accepts connections");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} /v2{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/scim+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap_or_else(|_| panic!("not an HTTP answer: {answer}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn an_empty_server_that_wants_its_token() {
    let server = ScimServer::start().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{}/v2", server.port()));
    assert_eq!(request(&server, "GET", "/Users", None, "").0, 401, "no token, no answer");
    assert_eq!(request(&server, "GET", "/Users", Some("wrong"), "").0, 401);
    let (status, body) = request(&server, "GET", "/Users", Some(server.token()), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"totalResults\":0") || body.contains("\"totalResults\": 0"), "starts empty: {body}");

    let user = r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada.lovelace"}"#;
    let (status, body) = request(&server, "POST", "/Users", Some(server.token()), user);
    assert_eq!(status, 201, "{body}");
    assert_eq!(request(&server, "POST", "/Users", Some(server.token()), user).0, 409, "userName is unique");

    let other = ScimServer::start().unwrap();
    assert_ne!(other.port(), server.port());
    let (_, body) = request(&other, "GET", "/Users", Some(other.token()), "");
    assert!(!body.contains("ada.lovelace"), "each server has its own data: {body}");
}

#[test]
fn a_dropped_server_is_gone() {
    let server = ScimServer::start().unwrap();
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
}

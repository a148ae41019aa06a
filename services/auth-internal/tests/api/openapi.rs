//! `GET /openapi.json`: a valid OpenAPI 3.1 document that matches the running
//! service in both directions (documented → served, registered → documented).
//! The document is produced by `routes::table`, the list the server mounts:
//! "registered" here is what that table yields, and the probes check it
//! against the live router (every documented operation answers; no other
//! method of a documented path does).

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn fetch_document(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).expect("/openapi.json is JSON")
}

/// (METHOD, path template) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// What the route table registers, as the library builds it (not fetched).
fn registered() -> BTreeSet<(String, String)> {
    let table = serde_json::to_value(auth_internal::openapi::document()).unwrap();
    operations(&table)
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method.to_lowercase()]
}

/// A path template with every `{param}` replaced by a harmless value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "00000000-0000-0000-0000-000000000000"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn property_names(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has properties"))
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn serves_a_valid_openapi_3_1_document() {
    let app = TestApp::spawn().await;
    let doc = fetch_document(&app).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi = {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "auth-internal");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["serviceKey"]["type"], "apiKey");
    assert_eq!(schemes["serviceKey"]["in"], "header");
    assert_eq!(schemes["serviceKey"]["name"], "X-Service-Key");

    // The error envelope `{error:{code,message}}`.
    let envelope = &doc["components"]["schemas"]["ApiError"];
    assert_eq!(envelope["required"], serde_json::json!(["error"]));
    assert_eq!(
        property_names(&doc, "ApiErrorBody"),
        BTreeSet::from(["code".to_owned(), "message".to_owned()])
    );

    // Every error answer is the envelope, and the documented statuses are used.
    let mut statuses = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = operation(&doc, &method, &path);
        assert!(
            op["responses"]
                .as_object()
                .is_some_and(|r| r.keys().any(|s| {
                    // The browser endpoints of OAuth succeed with a redirect.
                    s.starts_with('2') || (path.starts_with("/oauth/") && s.starts_with('3'))
                })),
            "{method} {path} documents no success answer"
        );
        for (status, resp) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                statuses.insert(status.clone());
                // `/health` answers 503 in its own shape, by design; the OAuth
                // endpoints answer in the RFCs' shape (clients parse it), and
                // their browser pages in HTML.
                let schema = if path == "/health" {
                    "#/components/schemas/Health"
                } else if path.starts_with("/oauth/") {
                    if resp["content"]["text/html"].is_object() {
                        continue;
                    }
                    "#/components/schemas/OAuthErrorBody"
                } else {
                    "#/components/schemas/ApiError"
                };
                assert_eq!(
                    resp["content"]["application/json"]["schema"]["$ref"], schema,
                    "{method} {path} {status}"
                );
            }
        }
        // The security declared matches the route family.
        let security = &op["security"];
        let expected = if path.starts_with("/api/v1/internal/") {
            serde_json::json!([{ "serviceKey": [] }])
        } else if path.starts_with("/api/v1/sync/")
            || path.starts_with("/api/v1/missions/")
            || path.starts_with("/api/v1/tokens")
            || path.starts_with("/api/v1/oauth/")
            || path == "/mcp"
        {
            serde_json::json!([{ "bearer": [] }])
        } else {
            Value::Null
        };
        assert_eq!(security, &expected, "{method} {path}");
    }
    for status in ["400", "401", "404", "409", "413", "422", "503"] {
        assert!(statuses.contains(status), "no route documents {status}");
    }

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {r}"
        );
    }

    // Field names follow serde (camelCase on the wire).
    let token = property_names(&doc, "TokenResponse");
    for f in ["accessToken", "tokenType", "expiresIn", "user"] {
        assert!(token.contains(f), "TokenResponse lacks {f}: {token:?}");
    }
    let change = property_names(&doc, "PushChange");
    for f in ["appId", "recordId", "op", "data", "fieldStamps", "stamp"] {
        assert!(change.contains(f), "PushChange lacks {f}: {change:?}");
    }
}

#[tokio::test]
async fn every_documented_or_registered_operation_is_served() {
    let app = TestApp::spawn().await;
    let doc = fetch_document(&app).await;
    let documented = operations(&doc);
    // The table holds (at least) the 25 operations of the first release.
    assert!(documented.len() >= 25, "{}", documented.len());

    // The probe can fail: an unknown route is the router's 404.
    let resp = app
        .client
        .get(app.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.unwrap().contains("no route for"));

    for (method, template) in documented.union(&registered()) {
        // Harmless: no credentials and no body, so nothing is written.
        let resp = app
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&concrete(template)),
            )
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no route for")),
            "{method} {template} is not served: {status} {body}"
        );
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template}: {body}"
        );
        // A secured operation refuses the anonymous request; an open one does not.
        let secured = !operation(&doc, method, template)["security"].is_null();
        if secured {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {template}");
        } else {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {template}");
        }
    }
}

#[tokio::test]
async fn documents_exactly_the_registered_routes() {
    let app = TestApp::spawn().await;
    let doc = fetch_document(&app).await;
    let documented = operations(&doc);
    let registered = registered();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "registered but not in /openapi.json: {undocumented:?}"
    );
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        unregistered.is_empty(),
        "in /openapi.json but not in routes::table: {unregistered:?}"
    );
    // The served document is the table's, byte for byte in JSON terms.
    assert_eq!(
        doc,
        serde_json::to_value(auth_internal::openapi::document()).unwrap()
    );
}

#[tokio::test]
async fn no_undocumented_method_of_a_documented_path_is_served() {
    let app = TestApp::spawn().await;
    let doc = fetch_document(&app).await;
    let documented = operations(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    let mut probed = 0;
    for path in paths {
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            if documented.contains(&(method.to_owned(), path.clone())) {
                continue;
            }
            let resp = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&concrete(path)),
                )
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let allow = resp
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = resp.text().await.unwrap();
            probed += 1;
            // A gated family refuses the anonymous caller before routing.
            let gated = path.starts_with("/api/v1/internal/") || path == "/mcp";
            if gated {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
                continue;
            }
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served but not documented: {body}"
            );
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                body["error"]["code"], "method_not_allowed",
                "{method} {path}"
            );
            for (m, p) in &documented {
                if p == path {
                    assert!(
                        allow.contains(m.as_str()),
                        "{path}: Allow {allow:?} lacks {m}"
                    );
                }
            }
        }
    }
    assert!(probed > 50, "only {probed} probes");
}

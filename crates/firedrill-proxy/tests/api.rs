//! The HTTP API answers like Toxiproxy 2.x, bad input included.

mod common;

use common::{api_server, echo_server, http};
use serde_json::json;

#[tokio::test]
async fn bad_inputs_get_toxiproxy_codes_and_server_keeps_serving() {
    let (_s, api) = api_server().await;
    let up = echo_server().await;
    let create = json!({"name": "db", "listen": "127.0.0.1:0", "upstream": up.to_string()});
    let (st, body) = http(api, "POST", "/proxies", &create.to_string()).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["toxics"], json!([]));

    // Malformed JSON.
    let (st, body) = http(api, "POST", "/proxies", "{\"name\": ").await;
    assert_eq!(st, 400);
    assert_eq!(body["status"], 400);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("bad request body"));
    assert_eq!(http(api, "GET", "/version", "").await.0, 200);

    // Unknown toxic type.
    let (st, body) = http(api, "POST", "/proxies/db/toxics", r#"{"type": "gremlins"}"#).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("invalid toxic type"))
    );
    assert_eq!(http(api, "GET", "/version", "").await.0, 200);

    // Port already in use: the API's own port.
    let clash = json!({"name": "clash", "listen": api.to_string(), "upstream": up.to_string()});
    let (st, body) = http(api, "POST", "/proxies", &clash.to_string()).await;
    assert_eq!(st, 500);
    assert_eq!(
        body["error"],
        format!("listen tcp {api}: bind: address already in use")
    );
    assert_eq!(http(api, "GET", "/proxies/clash", "").await.0, 404);

    // Duplicate proxy name.
    let (st, body) = http(api, "POST", "/proxies", &create.to_string()).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("proxy already exists"))
    );

    // Still serving, state intact.
    let (st, body) = http(api, "GET", "/proxies", "").await;
    assert_eq!(st, 200);
    assert_eq!(body.as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn not_found_conflicts_and_validation() {
    let (_s, api) = api_server().await;
    let up = echo_server().await;
    assert_eq!(http(api, "GET", "/proxies/nope", "").await.0, 404);
    assert_eq!(http(api, "DELETE", "/proxies/nope", "").await.0, 404);
    assert_eq!(http(api, "GET", "/proxies/nope/toxics", "").await.0, 404);
    let (st, body) = http(api, "POST", "/proxies", r#"{"name": "x"}"#).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("missing required field: upstream"))
    );
    let create = json!({"name": "db", "upstream": up.to_string()});
    assert_eq!(
        http(api, "POST", "/proxies", &create.to_string()).await.0,
        201
    );
    assert_eq!(http(api, "GET", "/proxies/db/toxics/t", "").await.0, 404);
    assert_eq!(http(api, "DELETE", "/proxies/db/toxics/t", "").await.0, 404);
    let bad_stream = r#"{"type": "latency", "stream": "sideways"}"#;
    assert_eq!(
        http(api, "POST", "/proxies/db/toxics", bad_stream).await.0,
        400
    );
    let bad_attr = r#"{"type": "latency", "attributes": {"latency": "slow"}}"#;
    assert_eq!(
        http(api, "POST", "/proxies/db/toxics", bad_attr).await.0,
        400
    );
    let t = r#"{"type": "latency", "attributes": {"latency": 10}}"#;
    assert_eq!(http(api, "POST", "/proxies/db/toxics", t).await.0, 200);
    let (st, body) = http(api, "POST", "/proxies/db/toxics", t).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("toxic already exists"))
    );
}

#[tokio::test]
async fn full_lifecycle() {
    let (_s, api) = api_server().await;
    let up = echo_server().await;
    let create = json!({"name": "db", "listen": "127.0.0.1:0", "upstream": up.to_string(), "enabled": false});
    let (st, body) = http(api, "POST", "/proxies", &create.to_string()).await;
    assert_eq!((st, &body["enabled"]), (201, &json!(false)));

    let (st, body) = http(api, "POST", "/proxies/db", r#"{"enabled": true}"#).await;
    assert_eq!((st, &body["enabled"]), (200, &json!(true)));
    let listen = body["listen"].as_str().unwrap().to_string();
    assert!(!listen.ends_with(":0"));

    let toxic =
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 5, "jitter": 1}});
    let (st, body) = http(api, "POST", "/proxies/db/toxics", &toxic.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(
        body,
        json!({"name": "latency_upstream", "type": "latency", "stream": "upstream",
               "toxicity": 1.0, "attributes": {"latency": 5, "jitter": 1}})
    );
    let upd = r#"{"attributes": {"latency": 7}, "toxicity": 0.5}"#;
    let (st, body) = http(api, "PATCH", "/proxies/db/toxics/latency_upstream", upd).await;
    assert_eq!(st, 200);
    assert_eq!(body["attributes"], json!({"latency": 7, "jitter": 1}));
    assert_eq!(body["toxicity"], 0.5);
    let (_, body) = http(api, "GET", "/proxies/db/toxics", "").await;
    assert_eq!(body.as_array().unwrap().len(), 1);

    assert_eq!(
        http(api, "POST", "/proxies/db", r#"{"enabled": false}"#)
            .await
            .0,
        200
    );
    assert_eq!(http(api, "POST", "/reset", "").await.0, 204);
    let (_, body) = http(api, "GET", "/proxies/db", "").await;
    assert_eq!(body["enabled"], true);
    assert_eq!(body["toxics"], json!([]));
    assert_eq!(body["listen"], listen, "re-enabled on the same port");

    let pop = json!([
        {"name": "db", "listen": listen, "upstream": up.to_string()},
        {"name": "cache", "listen": "127.0.0.1:0", "upstream": up.to_string()}
    ]);
    let (st, body) = http(api, "POST", "/populate", &pop.to_string()).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["proxies"].as_array().unwrap().len(), 2);

    assert_eq!(
        http(api, "DELETE", "/proxies/db/toxics/none", "").await.0,
        404
    );
    assert_eq!(http(api, "DELETE", "/proxies/cache", "").await.0, 204);
    let (_, body) = http(api, "GET", "/proxies", "").await;
    assert_eq!(body.as_object().unwrap().len(), 1);
    let (st, body) = http(api, "GET", "/version", "").await;
    assert_eq!(st, 200);
    assert!(body["version"].is_string());
}

#[tokio::test]
async fn metrics_count_bytes_and_connections() {
    let (s, api) = api_server().await;
    let up = echo_server().await;
    let info = s
        .create("m", "127.0.0.1:0", &up.to_string(), true)
        .await
        .unwrap();
    let mut c = tokio::net::TcpStream::connect(&info.listen).await.unwrap();
    assert_eq!(common::ping(&mut c, b"hello").await, b"hello");
    let (st, body) = http(api, "GET", "/metrics", "").await;
    assert_eq!(st, 200);
    let text = body.as_str().unwrap();
    assert!(
        text.contains(r#"firedrill_proxy_bytes_total{proxy="m",direction="upstream"} 5"#),
        "{text}"
    );
    assert!(text.contains(r#"firedrill_proxy_bytes_total{proxy="m",direction="downstream"} 5"#));
    assert!(
        text.contains(r#"firedrill_proxy_connections_total{proxy="m",direction="downstream"} 1"#)
    );
}

//! The Toxiproxy 2.x HTTP API over [`ProxyServer`]. Bodies are parsed by hand
//! (any content type, as Go's decoder accepts) so every failure maps to the
//! status code and `{"error", "status"}` body Toxiproxy clients expect.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::{ProxyConfig, ProxyError, ProxyServer, ToxicSpec, TOXIPROXY_API_VERSION};

pub(crate) fn router(server: ProxyServer) -> Router {
    Router::new()
        .route("/proxies", get(proxy_index).post(proxy_create))
        .route("/populate", axum::routing::post(populate))
        .route(
            "/proxies/{proxy}",
            get(proxy_show)
                .post(proxy_update)
                .patch(proxy_update)
                .delete(proxy_delete),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxic_index).post(toxic_create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show)
                .post(toxic_update)
                .patch(toxic_update)
                .delete(toxic_delete),
        )
        .route("/reset", axum::routing::post(reset))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(server)
}

type ApiResult = Result<Response, ProxyError>;

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            Json(json!({"error": self.to_string(), "status": status})),
        )
            .into_response()
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ProxyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        // Go's json.Decoder says exactly this on an empty body.
        return Err(ProxyError::BadRequestBody("EOF".into()));
    }
    serde_json::from_slice(body).map_err(|e| ProxyError::BadRequestBody(e.to_string()))
}

fn as_object(v: &Value) -> Result<&Map<String, Value>, ProxyError> {
    v.as_object()
        .ok_or_else(|| ProxyError::BadRequestBody(format!("expected a JSON object, got {v}")))
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ProxyError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ProxyError::BadRequestBody(format!(
            "{key} must be a string, got {v}"
        ))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ProxyError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ProxyError::BadRequestBody(format!(
            "{key} must be a boolean, got {v}"
        ))),
    }
}

fn proxy_config(v: &Value) -> Result<ProxyConfig, ProxyError> {
    let obj = as_object(v)?;
    Ok(ProxyConfig {
        name: opt_string(obj, "name")?.unwrap_or_default(),
        listen: opt_string(obj, "listen")?.unwrap_or_default(),
        upstream: opt_string(obj, "upstream")?.unwrap_or_default(),
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
    })
}

async fn proxy_index(State(s): State<ProxyServer>) -> Response {
    let map: Map<String, Value> = s
        .list()
        .await
        .into_iter()
        .map(|p| (p.name.clone(), json!(p)))
        .collect();
    Json(Value::Object(map)).into_response()
}

async fn proxy_create(State(s): State<ProxyServer>, body: Bytes) -> ApiResult {
    let c = proxy_config(&parse_body(&body)?)?;
    let info = s.create(&c.name, &c.listen, &c.upstream, c.enabled).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn populate(State(s): State<ProxyServer>, body: Bytes) -> ApiResult {
    let v = parse_body(&body)?;
    let list = v
        .as_array()
        .ok_or_else(|| ProxyError::BadRequestBody(format!("expected a JSON array, got {v}")))?;
    let configs = list
        .iter()
        .map(proxy_config)
        .collect::<Result<Vec<_>, _>>()?;
    match s.populate(configs).await {
        Ok(proxies) => {
            Ok((StatusCode::CREATED, Json(json!({ "proxies": proxies }))).into_response())
        }
        Err(e) => {
            let status = e.status();
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({"error": e.to_string(), "status": status, "proxies": []});
            Ok((code, Json(body)).into_response())
        }
    }
}

async fn proxy_show(State(s): State<ProxyServer>, Path(name): Path<String>) -> ApiResult {
    let info = s.get(&name).await.ok_or(ProxyError::ProxyNotFound)?;
    Ok(Json(info).into_response())
}

async fn proxy_update(
    State(s): State<ProxyServer>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    // Toxiproxy looks the proxy up before reading the body: 404 wins over 400.
    if s.get(&name).await.is_none() {
        return Err(ProxyError::ProxyNotFound);
    }
    let v = parse_body(&body)?;
    let obj = as_object(&v)?;
    let listen = opt_string(obj, "listen")?;
    let upstream = opt_string(obj, "upstream")?;
    let enabled = opt_bool(obj, "enabled")?;
    let info = s
        .update(&name, listen.as_deref(), upstream.as_deref(), enabled)
        .await?;
    Ok(Json(info).into_response())
}

async fn proxy_delete(State(s): State<ProxyServer>, Path(name): Path<String>) -> ApiResult {
    s.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxic_index(State(s): State<ProxyServer>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(s.toxics(&name).await?).into_response())
}

async fn toxic_create(
    State(s): State<ProxyServer>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    if s.get(&name).await.is_none() {
        return Err(ProxyError::ProxyNotFound);
    }
    let spec = ToxicSpec::from_json(&parse_body(&body)?)?;
    // Toxiproxy answers a new toxic with 200, not 201.
    Ok(Json(s.add_toxic(&name, spec).await?).into_response())
}

async fn toxic_show(
    State(s): State<ProxyServer>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(s.get_toxic(&name, &toxic).await?).into_response())
}

async fn toxic_update(
    State(s): State<ProxyServer>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    s.get_toxic(&name, &toxic).await?;
    let v = parse_body(&body)?;
    Ok(Json(s.update_toxic(&name, &toxic, &v).await?).into_response())
}

async fn toxic_delete(
    State(s): State<ProxyServer>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult {
    s.remove_toxic(&name, &toxic).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reset(State(s): State<ProxyServer>) -> ApiResult {
    s.try_reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        format!("{{\"version\": \"{TOXIPROXY_API_VERSION}\"}}\n"),
    )
        .into_response()
}

async fn metrics(State(s): State<ProxyServer>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics_text(),
    )
        .into_response()
}

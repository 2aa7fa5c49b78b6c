//! The shapes a request takes on its way through: the request as it reached the gateway, the
//! payload 2.0 events the authorizer and the function get, and the function's answer turned
//! back into an HTTP response.

use super::routes::percent_decode;
use super::{Route, ACCOUNT_ID, API_ID, REGION, STAGE};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A request as it reached the gateway.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub raw_path: String,
    pub raw_query: String,
    /// In arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub source_ip: String,
    pub protocol: String,
}

/// What the gateway answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    /// API Gateway's own answers: `{"message": "..."}`.
    pub fn message(status: u16, message: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(json!({ "message": message }).to_string()),
        }
    }
}

/// The parts of a request both events share.
pub(super) struct EventParts<'a> {
    request: &'a Request,
    route: &'a Route,
    params: BTreeMap<String, String>,
    /// Lower-case names, repeated headers joined with commas; cookies moved to `cookies`.
    pub(super) headers: BTreeMap<String, String>,
    cookies: Vec<String>,
    context: Value,
}

impl<'a> EventParts<'a> {
    pub(super) fn new(
        request: &'a Request,
        route: &'a Route,
        params: BTreeMap<String, String>,
        request_id: &str,
        domain: &str,
    ) -> EventParts<'a> {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        let mut cookies = Vec::new();
        for (name, value) in &request.headers {
            let name = name.to_ascii_lowercase();
            if name == "cookie" {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
                continue;
            }
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        // What API Gateway adds on the way in.
        let forwarded_for = match headers.get("x-forwarded-for") {
            Some(chain) => format!("{chain}, {}", request.source_ip),
            None => request.source_ip.clone(),
        };
        headers.insert("x-forwarded-for".into(), forwarded_for);
        headers.insert("x-forwarded-proto".into(), "http".into());
        if let Some(port) = domain.rsplit_once(':').map(|(_, p)| p.to_owned()) {
            headers.insert("x-forwarded-port".into(), port);
        }
        let now = chrono::Utc::now();
        headers.insert(
            "x-amzn-trace-id".into(),
            format!("Root=1-{:08x}-{}", now.timestamp(), random_hex(12)),
        );
        let context = json!({
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(['.', ':']).next().unwrap_or(domain),
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route.key(),
            "stage": STAGE,
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        });
        EventParts {
            request,
            route,
            params,
            headers,
            cookies,
            context,
        }
    }

    /// The fields both events carry, in API Gateway's order.
    fn common(&self, event: &mut Map<String, Value>) {
        event.insert("routeKey".into(), self.route.key().into());
        event.insert("rawPath".into(), self.request.raw_path.clone().into());
        event.insert(
            "rawQueryString".into(),
            self.request.raw_query.clone().into(),
        );
        if !self.cookies.is_empty() {
            event.insert("cookies".into(), json!(self.cookies));
        }
        event.insert("headers".into(), json!(self.headers));
        let query = query_parameters(&self.request.raw_query);
        if !query.is_empty() {
            event.insert("queryStringParameters".into(), json!(query));
        }
    }

    /// The HTTP API payload 2.0 event of the route's integration.
    pub(super) fn route_event(&self, authorizer_context: Option<Value>) -> Value {
        let mut event = Map::new();
        event.insert("version".into(), "2.0".into());
        self.common(&mut event);
        let mut context = self.context.clone();
        if let Some(lambda) = authorizer_context {
            context["authorizer"] = json!({ "lambda": lambda });
        }
        event.insert("requestContext".into(), context);
        if !self.params.is_empty() {
            event.insert("pathParameters".into(), json!(self.params));
        }
        let body = &self.request.body;
        let text = is_text(self.headers.get("content-type").map(String::as_str))
            .then(|| std::str::from_utf8(body).ok())
            .flatten();
        if !body.is_empty() {
            let encoded = match text {
                Some(text) => text.to_owned(),
                None => STANDARD.encode(body),
            };
            event.insert("body".into(), encoded.into());
        }
        event.insert(
            "isBase64Encoded".into(),
            (!body.is_empty() && text.is_none()).into(),
        );
        Value::Object(event)
    }

    /// The HTTP API Lambda authorizer request, payload format 2.0.
    pub(super) fn authorizer_event(&self, identity: Vec<String>) -> Value {
        let mut event = Map::new();
        event.insert("version".into(), "2.0".into());
        event.insert("type".into(), "REQUEST".into());
        event.insert(
            "routeArn".into(),
            format!(
                "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{}{}",
                self.request.method, self.request.raw_path
            )
            .into(),
        );
        event.insert("identitySource".into(), json!(identity));
        self.common(&mut event);
        event.insert("requestContext".into(), self.context.clone());
        if !self.params.is_empty() {
            event.insert("pathParameters".into(), json!(self.params));
        }
        Value::Object(event)
    }
}

/// `queryStringParameters`: decoded, repeated names joined with commas (as API Gateway does).
fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        parameters
            .entry(decode(name))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&decode(value));
            })
            .or_insert_with(|| decode(value));
    }
    parameters
}

/// Bodies API Gateway passes as text; everything else arrives base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("/json")
        || essence.ends_with("+json")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml")
        || essence == "application/javascript"
}

/// The function's payload 2.0 answer as an HTTP response. An answer without `statusCode` is a
/// 200 with the answer as its JSON body, as API Gateway infers.
pub fn http_response(answer: &Value) -> Result<Response, String> {
    let Some(fields) = answer.as_object().filter(|f| f.contains_key("statusCode")) else {
        return Ok(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(answer.to_string()),
        });
    };
    let status = fields["statusCode"]
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", fields["statusCode"]))?
        as u16;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut headers = Vec::new();
    if let Some(single) = fields.get("headers").and_then(Value::as_object) {
        headers.extend(single.iter().map(|(k, v)| (k.clone(), text(v))));
    }
    if let Some(multi) = fields.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                continue;
            }
            for value in values.as_array().into_iter().flatten() {
                headers.push((name.clone(), text(value)));
            }
        }
    }
    for cookie in fields
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        headers.push(("set-cookie".into(), text(cookie)));
    }
    let body = match fields.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(body)) if fields["isBase64Encoded"] == true => Bytes::from(
            STANDARD
                .decode(body)
                .map_err(|e| format!("isBase64Encoded body is not base64: {e}"))?,
        ),
        Some(Value::String(body)) => Bytes::from(body.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// An id in API Gateway's style (`Ab3wHjYfoAMEV4A=`).
pub(super) fn request_id() -> String {
    let mut bytes = [0u8; 10];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    STANDARD.encode(bytes)
}

fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

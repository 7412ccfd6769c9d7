//! The sessions API on the control-plane listener: `GET /api/v2/{aibridge,ai-gateway}/sessions`,
//! `…/sessions/{id}`, `…/interceptions` and `…/usage`, authenticated by gateway token (`Authorization:
//! Bearer` or `X-Api-Key`). A `user` token reads only its own user's records; an `admin` token everyone's;
//! a user asking for anyone else's gets 403 and nothing else (no count, no hint the record exists).
//! Every query runs on tokio's blocking pool through a read-only [`Store`](crate::db::Store).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::query::{parse_instant, parse_limit, parse_search};
use super::readers::Readers;
use super::usage::{report_json, GroupBy, PriceTable};
use super::{ui, view};
use crate::auth::{bearer_token, Principal, TokenCache};
use crate::db::{Cursor, InterceptionQuery, Role, SessionQuery, StoreError};

/// What every handler shares.
pub(crate) struct ApiState {
    pub(crate) tokens: TokenCache,
    pub(crate) readers: Readers,
    pub(crate) prices: PriceTable,
}

type Shared = Arc<ApiState>;

/// Sessions per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;

/// How far back the sessions list looks when the search names no `started_after`: sessions are grouped
/// from the interceptions in the window, so an unbounded default would group the whole table on every page
/// of a large database. The window is answered from the `started_at` index.
const DEFAULT_SESSIONS_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// The start of the sessions list's window: the one asked for, else [`DEFAULT_SESSIONS_WINDOW`] back.
fn sessions_window(asked: Option<SystemTime>, now: SystemTime) -> SystemTime {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    asked.unwrap_or(UNIX_EPOCH + since_epoch.saturating_sub(DEFAULT_SESSIONS_WINDOW))
}

/// An API failure, answered as `{"message": …}` with its status. The one place errors become answers.
#[derive(Debug)]
pub(crate) enum ApiError {
    Unauthorized,
    Forbidden,
    NotFound,
    BadRequest(String),
    Store(StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "a gateway token is required (Authorization: Bearer or X-Api-Key)".into())
            }
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden".to_string()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_string()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "sessions API query failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the database could not answer; see the gateway log".into())
            }
        };
        (status, [(header::CACHE_CONTROL, "no-store")], Json(json!({ "message": message }))).into_response()
    }
}

/// The routes of the API under both prefixes, the web page and the fallbacks.
pub(crate) fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", get(show_session))
        .route("/interceptions", get(list_interceptions))
        .route("/usage", get(usage))
        .fallback(|| async { ApiError::NotFound });
    Router::new()
        .nest("/api/v2/aibridge", api.clone())
        .nest("/api/v2/ai-gateway", api)
        .merge(ui::routes())
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// The caller of a request, from its gateway token.
fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = header_text(header::AUTHORIZATION)
        .and_then(bearer_token)
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim))
        .ok_or(ApiError::Unauthorized)?;
    state.tokens.verify(presented, SystemTime::now()).map_err(|_| ApiError::Unauthorized)
}

/// The user whose records the caller may read: its own for a `user` token (asking for another's is
/// forbidden), the one asked for (or everyone) for an admin.
fn scope(who: &Principal, asked: Option<String>) -> Result<Option<String>, ApiError> {
    match who.role {
        Role::Admin => Ok(asked),
        Role::User => match asked {
            Some(u) if u != *who.user => Err(ApiError::Forbidden),
            _ => Ok(Some(who.user.to_string())),
        },
    }
}

fn ok(v: Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response()
}

async fn list_sessions(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let now = SystemTime::now();
    let mut filter = parse_search(params.get("q").map_or("", String::as_str), now).map_err(ApiError::BadRequest)?;
    filter.initiator_id = scope(&who, filter.initiator_id.take())?;
    let window_start = sessions_window(filter.started_after, now);
    filter.started_after = Some(window_start);
    let query = SessionQuery {
        filter,
        after_session_id: params.get("after_session_id").filter(|s| !s.is_empty()).cloned(),
        limit: parse_limit(params.get("limit").map(String::as_str), DEFAULT_LIMIT).map_err(ApiError::BadRequest)?,
    };
    let page = state.readers.run(move |s| s.list_sessions(&query)).await.map_err(ApiError::Store)?;
    Ok(ok(view::page_json(&page, window_start)))
}

async fn show_session(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let only = scope(&who, None)?;
    let key = id.clone();
    let rows =
        state.readers.run(move |s| s.session_interceptions(&key, only.as_deref())).await.map_err(ApiError::Store)?;
    if rows.is_empty() {
        // A user cannot tell another user's session from one that does not exist.
        return Err(if who.role == Role::Admin { ApiError::NotFound } else { ApiError::Forbidden });
    }
    Ok(ok(view::session_json(&id, &rows)))
}

async fn list_interceptions(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let now = SystemTime::now();
    let bad = ApiError::BadRequest;
    let time = |k: &str| params.get(k).map(|t| parse_instant(t, now)).transpose();
    let after = match params.get("after_id").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => {
            // The cursor is the last id of the previous page: `<started_at>,<id>` as the API returned it.
            let (at, id) = text.split_once(',').ok_or_else(|| bad("after_id is not a cursor".into()))?;
            Some(Cursor {
                started_at: parse_instant(at, now).map_err(bad)?,
                id: id.parse().map_err(|_| ApiError::BadRequest("after_id is not a cursor".into()))?,
            })
        }
    };
    let query = InterceptionQuery {
        initiator_id: scope(&who, params.get("initiator").cloned())?,
        started_after: time("started_after").map_err(ApiError::BadRequest)?,
        started_before: time("started_before").map_err(ApiError::BadRequest)?,
        after,
        limit: parse_limit(params.get("limit").map(String::as_str), DEFAULT_LIMIT).map_err(ApiError::BadRequest)?,
    };
    let page = state.readers.run(move |s| s.list_interceptions(&query)).await.map_err(ApiError::Store)?;
    let next = page.next.map(|c| format!("{},{}", view::rfc3339_micros(c.started_at), c.id));
    Ok(ok(json!({
        "interceptions": page.interceptions.iter().map(view::interception_json).collect::<Vec<_>>(),
        "next_after_id": next,
    })))
}

async fn usage(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let since_text = params.get("since").map_or("7d", String::as_str).to_owned();
    let since = parse_instant(&since_text, SystemTime::now()).map_err(ApiError::BadRequest)?;
    let by = GroupBy::parse_list(params.get("group_by").map_or("", String::as_str)).map_err(ApiError::BadRequest)?;
    let only = scope(&who, params.get("initiator").cloned())?;
    let rows = state.readers.run(move |s| s.usage(since, only.as_deref())).await.map_err(ApiError::Store)?;
    Ok(ok(report_json(&rows, &by, &state.prices, &since_text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sessions_window_defaults_to_a_week_and_keeps_an_asked_start() {
        let now = UNIX_EPOCH + Duration::from_secs(30 * 86_400);
        assert_eq!(sessions_window(None, now), now - Duration::from_secs(7 * 86_400));
        let asked = UNIX_EPOCH + Duration::from_secs(86_400);
        assert_eq!(sessions_window(Some(asked), now), asked);
        assert_eq!(sessions_window(None, UNIX_EPOCH + Duration::from_secs(60)), UNIX_EPOCH);
    }
}

//! The identify stage: which session a request to the app belongs to, through the session
//! service (the only reader of credentials, [`Sessions::authenticate`]), with the inline
//! refresh it may make; and the answer to a request that needs someone and has nobody.

use http::{HeaderValue, Method, Request, StatusCode, header};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::guard::Target;
use crate::error::Error;
use crate::http_util::{Response, json, redirect, wants_html};
use crate::session::{Outcome, Session, Sessions};

/// Who a request to the app comes from.
#[derive(Debug)]
pub enum Identified {
    /// A session, or nobody on a path that needs nobody.
    Known(Option<Session>),
    /// Nobody, where someone is needed: this answer (the login page, or 401) goes back.
    SignInFirst(Response),
}

/// Identify the request's session. Credentials are not read at all where nothing needs them
/// ([`Target::needs_identity`]); a credential that is presented and does not hold is still
/// refused (a bad bearer token is a 401, not "nobody").
pub async fn identify<B>(
    sessions: &Sessions,
    target: &Target,
    req: &Request<B>,
    auth_prefix: &str,
    now: i64,
) -> Result<Identified, Error> {
    if !target.needs_identity() {
        return Ok(Identified::Known(None));
    }
    Ok(match sessions.authenticate(req.headers(), now).await? {
        Outcome::Authenticated(s) => Identified::Known(Some(s)),
        Outcome::Anonymous { .. } if target.public => Identified::Known(None),
        Outcome::Anonymous { clear } => {
            Identified::SignInFirst(sign_in_first(req, auth_prefix, clear))
        }
    })
}

/// Characters escaped in the `next` query parameter.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'@')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'\'');

/// Navigations go to the login page (with where they were going as `next`); XHRs (Dash's
/// `_dash-*`) and API calls get 401 JSON. `clear` removes dead session cookies.
pub fn sign_in_first<B>(req: &Request<B>, auth_prefix: &str, clear: Vec<HeaderValue>) -> Response {
    let navigation = matches!(*req.method(), Method::GET | Method::HEAD)
        && wants_html(req.headers(), req.uri().path());
    let mut r = if navigation {
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let location = format!(
            "{auth_prefix}/login?next={}",
            utf8_percent_encode(target, QUERY_VALUE)
        );
        redirect(StatusCode::FOUND, &location)
    } else {
        let mut r = json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "unauthenticated", "message": "authentication required", "login": format!("{auth_prefix}/login")}),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    for c in clear {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

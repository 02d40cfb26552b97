//! The CSRF and authorize stages: what a request to the app must show that it comes from this
//! site (decided by [`csrf::demand`], met by the session service), and what the policy lets
//! it reach (decided by [`Policy::decide`] over every rule kind that needs no body), with
//! which of the app's answers must be filtered for the asker.

use std::sync::Arc;

use http::Request;

use super::guard::Target;
use crate::error::Error;
use crate::policy::{Asked, Grant, Policy, Subject};
use crate::proxy::filter::Filter;
use crate::session::{Session, Sessions, csrf};

/// The CSRF stage: refuse a request that cannot show it comes from this site.
pub fn check_forgery<B>(
    sessions: &Sessions,
    target: &Target,
    req: &Request<B>,
    session: Option<&Session>,
    now: i64,
) -> Result<(), Error> {
    let demand = csrf::demand(&target.method, target.upgrade, session.map(|s| s.via));
    let sid = session.map_or("", |s| s.claims.sid.as_str());
    sessions.meet_demand(demand, req.headers(), sid, now)
}

/// What the authorize stage lets through.
pub struct Authorized {
    pub grant: Grant,
    /// The answer that must lose components the asker may not see, and how it is read.
    pub filter: Option<Filter>,
}

/// The authorize stage: the policy's decision for this request and asker.
pub fn authorize(
    policy: &Arc<Policy>,
    target: &Target,
    session: Option<&Session>,
) -> Result<Authorized, Error> {
    let who = session.map(|s| &*s.claims as &dyn Subject);
    let asked = Asked {
        segments: &target.path.segments,
        what: &target.path.forward,
        method: &target.method,
        mcp: target.mcp,
    };
    let grant = policy.decide(&asked, who, session.map(|s| s.claims.sub.as_str()))?;
    let filter = grant
        .restricted
        .as_ref()
        .filter(|h| h.hides_components())
        .and_then(|_| Filter::for_request(&target.path, &target.method));
    Ok(Authorized { grant, filter })
}

//! A signed-in user with no role and no permission, for the policy targets.

use dashgate::policy::Subject;

pub struct Viewer;

impl Subject for Viewer {
    fn has_role(&self, _: &str) -> bool {
        false
    }
    fn has_permission(&self, _: &str) -> bool {
        false
    }
}

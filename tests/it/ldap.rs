//! LDAP / Active Directory logins against a real `slapd`.

use crate::support::*;

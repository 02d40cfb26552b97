//! A real OpenLDAP `slapd` (Debian package) on free loopback ports, with a seeded directory.

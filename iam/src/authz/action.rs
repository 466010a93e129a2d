//! Actions (`service:resource:verb`) and the permission patterns roles grant them with.
//!
//! A pattern is `*` (everything), or three segments each a name or `*`
//! (`plasmavmc:instances:*`, `*:*:get`). A role's permissions are read in order and the last
//! pattern that matches decides, so `!`-prefixed patterns carve exceptions out of earlier ones
//! (`["*", "!iam:*:*", "iam:*:get"]`: everything, no IAM changes, but IAM reads).

use crate::error::IamError;

/// Checks a concrete action: three non-empty segments of `[a-z0-9_-]`.
pub fn validate_action(action: &str) -> Result<(), IamError> {
    let segments: Vec<&str> = action.split(':').collect();
    if segments.len() != 3 || !segments.iter().all(|s| is_name(s)) {
        return Err(IamError::invalid(
            "action",
            format!("{action:?} is not service:resource:verb (lowercase letters, digits, '-' and '_')"),
        ));
    }
    Ok(())
}

/// Checks a permission pattern as a role may list it.
pub fn validate_pattern(pattern: &str) -> Result<(), IamError> {
    let body = pattern.strip_prefix('!').unwrap_or(pattern);
    if body == "*" {
        return Ok(());
    }
    let segments: Vec<&str> = body.split(':').collect();
    if segments.len() != 3 || !segments.iter().all(|s| *s == "*" || is_name(s)) {
        return Err(IamError::invalid(
            "permissions",
            format!("{pattern:?} is not a pattern: '*' or service:resource:verb with '*' segments, optionally '!'"),
        ));
    }
    Ok(())
}

fn is_name(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 64
        && segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether one pattern (without `!`) matches `action`.
fn matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut wanted = pattern.split(':');
    let mut given = action.split(':');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w == "*" || w == g => {}
            _ => return false,
        }
    }
}

/// Whether a permission list grants `action`: the last matching pattern decides.
pub fn grants(permissions: &[String], action: &str) -> bool {
    permissions
        .iter()
        .rev()
        .find_map(|p| match p.strip_prefix('!') {
            Some(denied) => matches(denied, action).then_some(false),
            None => matches(p, action).then_some(true),
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> Vec<String> {
        patterns.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wildcards_and_exceptions() {
        let table: &[(&[&str], &str, bool)] = &[
            (&["*"], "plasmavmc:instances:create", true),
            (&["plasmavmc:instances:*"], "plasmavmc:instances:delete", true),
            (&["plasmavmc:instances:*"], "plasmavmc:volumes:delete", false),
            (&["*:*:get"], "lightningstor:buckets:get", true),
            (&["*:*:get"], "lightningstor:buckets:list", false),
            (&["plasmavmc:*:get"], "prismnet:vpcs:get", false),
            (&[], "plasmavmc:instances:get", false),
            (&["*", "!iam:*:*", "iam:*:get"], "iam:users:get", true),
            (&["*", "!iam:*:*", "iam:*:get"], "iam:users:create", false),
            (&["*", "!iam:*:*", "iam:*:get"], "fiberlb:pools:create", true),
            (&["!*", "fiberlb:*:*"], "fiberlb:pools:create", true),
        ];
        for (patterns, action, want) in table {
            assert_eq!(grants(&list(patterns), action), *want, "{patterns:?} on {action}");
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate_action("plasmavmc:instances:create").is_ok());
        for bad in ["", "a:b", "a:b:c:d", "A:b:c", "a::c", "a:*:c"] {
            assert!(validate_action(bad).is_err(), "{bad}");
        }
        for good in ["*", "!*", "a:*:*", "*:*:get", "!iam:users:delete"] {
            assert!(validate_pattern(good).is_ok(), "{good}");
        }
        for bad in ["**", "a:b", "a:b*:c", "!"] {
            let err = validate_pattern(bad).unwrap_err().to_string();
            assert!(err.contains("permissions"), "{err}");
        }
    }
}

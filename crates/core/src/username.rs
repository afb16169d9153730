//! Username normalisation: how a name typed at a VPN prompt, given to a command or read
//! from the directory maps to a stored user. Every place that stores, finds or compares
//! usernames goes through here, so the rules cannot drift apart.

/// The stored form of a username: trimmed and lower-cased, so uniqueness and lookups are
/// case-insensitive.
pub fn normalise(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// The stored form of a name for a new user, or `None` when it cannot be one: empty, or
/// with spaces or control characters (no login prompt could send it whole).
pub fn for_new_user(raw: &str) -> Option<String> {
    let name = normalise(raw);
    let valid = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(name)
}

/// The stored names to try, in order, for what the user typed: lower-cased and trimmed;
/// `DOMAIN\user` drops the domain; `user@domain` (UPN) is tried whole, then as `user`.
pub fn candidates(raw: &str) -> Vec<String> {
    let name = normalise(raw);
    let name = match name.rsplit_once('\\') {
        Some((_, user)) => user.to_string(),
        None => name,
    };
    let mut out = Vec::with_capacity(2);
    if let Some((local, _)) = name.split_once('@') {
        if !local.is_empty() {
            out.push(name.clone());
            out.push(local.to_string());
            return out;
        }
    }
    if !name.is_empty() {
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{candidates, for_new_user, normalise};

    #[test]
    fn stored_names_are_trimmed_and_lower_case() {
        assert_eq!(normalise("  Alice\t"), "alice");
        assert_eq!(normalise("ÄRNE"), "ärne");
    }

    #[test]
    fn a_new_name_needs_characters_and_no_spaces() {
        assert_eq!(for_new_user(" Carol ").as_deref(), Some("carol"));
        assert_eq!(for_new_user("CORP\\Carol").as_deref(), Some("corp\\carol"));
        assert_eq!(for_new_user("   "), None);
        assert_eq!(for_new_user("carol smith"), None);
        assert_eq!(for_new_user("carol\u{7}"), None);
    }

    #[test]
    fn domain_and_upn_forms_reach_the_same_user() {
        assert_eq!(candidates(" Alice "), ["alice"]);
        assert_eq!(candidates("CORP\\Alice"), ["alice"]);
        assert_eq!(
            candidates("Alice@Corp.Example"),
            ["alice@corp.example", "alice"]
        );
        assert!(candidates("").is_empty());
        assert!(candidates("CORP\\").is_empty());
    }
}

//! Username normalisation: how a name typed at a VPN prompt maps to a stored user.

/// The stored names to try, in order, for what the user typed: lower-cased and trimmed;
/// `DOMAIN\user` drops the domain; `user@domain` (UPN) is tried whole, then as `user`.
pub fn candidates(raw: &str) -> Vec<String> {
    let name = raw.trim().to_lowercase();
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
    use super::candidates;

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

//! One meaning per path. The gateway decides on the path and the upstream routes on it; if
//! they could read it differently (`/crm/contacts/../admin`), a decision about one resource
//! would let a request reach another. Dot segments — literal or percent-encoded — are
//! resolved (RFC 3986 §5.2.4) and the resolved path is both decided on and forwarded;
//! encoded slashes and backslashes, which upstreams disagree about, are refused.

use std::borrow::Cow;

/// The normalized path, or why it is refused.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, String> {
    if !raw.starts_with('/') {
        return Err("the path must start with `/`".into());
    }
    // Most paths have nothing to decode or resolve: no escapes, no backslash, no dot
    // segment. They are their own normal form.
    if !raw.contains(['%', '\\']) && !raw.split('/').any(|seg| seg == "." || seg == "..") {
        return Ok(Cow::Borrowed(raw));
    }
    let lower = raw.to_ascii_lowercase();
    if raw.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
        return Err("encoded slashes and backslashes are not accepted in paths".into());
    }
    if lower.contains("%25") {
        return Err("double-encoded characters are not accepted in paths".into());
    }
    // `%2e` is `.` (an unreserved character); decoding it first makes encoded dot segments
    // ordinary ones.
    let decoded = replace_ignore_case(raw, "%2e", ".");
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                // A trailing dot segment leaves a directory: keep the slash.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    Ok(Cow::Owned(format!("/{}", out.join("/"))))
}

fn replace_ignore_case(s: &str, needle: &str, with: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find(needle) {
        out.push_str(&s[i..i + pos]);
        out.push_str(with);
        i += pos + needle.len();
    }
    out.push_str(&s[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn dot_segments_resolve_and_ambiguities_are_refused() {
        let ok = |raw: &str| {
            normalize(raw)
                .unwrap_or_else(|e| unreachable!("{raw}: {e}"))
                .into_owned()
        };
        assert_eq!(ok("/crm/contacts"), "/crm/contacts");
        assert_eq!(ok("/crm/contacts/"), "/crm/contacts/");
        assert_eq!(ok("/crm/contacts/../admin/users"), "/crm/admin/users");
        assert_eq!(ok("/crm/contacts/%2e%2e/admin"), "/crm/admin");
        assert_eq!(ok("/crm/contacts/%2E%2e/%2e/admin"), "/crm/admin");
        assert_eq!(ok("/crm/./contacts"), "/crm/contacts");
        assert_eq!(ok("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(ok("/crm/a/.."), "/crm/");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/crm/a%20b"), "/crm/a%20b");
        assert_eq!(ok("/crm/a.b/..c/.d/"), "/crm/a.b/..c/.d/");
        assert_eq!(ok("/crm/a/."), "/crm/a/");
        assert_eq!(ok("/crm//a"), "/crm//a");
        for bad in [
            "/crm/..%2fadmin",
            "/crm/%2F",
            "/crm\\..\\admin",
            "/crm/%252e%252e/x",
            "crm",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}

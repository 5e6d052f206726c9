//! The users to register: sipp's injection file format, so one CSV feeds
//! both sipp and rser-bench. The first line names the order (SEQUENTIAL,
//! RANDOM or USER) and is skipped; each further line is `user;password`
//! (more fields are ignored); `#` starts a comment line.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
}

pub fn parse(text: &str) -> Result<Vec<User>, String> {
    let mut users = Vec::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first))
            if ["SEQUENTIAL", "RANDOM", "USER"]
                .contains(&first.trim().split(',').next().unwrap_or("")) => {}
        Some((_, _)) => return Err("line 1: expected SEQUENTIAL, RANDOM or USER".into()),
        None => return Err("empty users file".into()),
    }
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(';');
        let name = fields.next().unwrap_or("").trim();
        let password = fields.next().map(str::trim);
        match password {
            Some(password) if !name.is_empty() => users.push(User {
                name: name.to_string(),
                password: password.to_string(),
            }),
            _ => return Err(format!("line {}: expected user;password", i + 1)),
        }
    }
    if users.is_empty() {
        return Err("no users in the file".into());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sipps_injection_format() {
        let u = parse("SEQUENTIAL\nalice;secret;\n# comment\n\nbob;pw\n").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].name, "alice");
        assert_eq!(u[1].password, "pw");
    }

    #[test]
    fn rejects_bad_files() {
        assert!(parse("").is_err());
        assert!(parse("alice;pw\n").is_err());
        assert_eq!(
            parse("SEQUENTIAL\nalice\n").unwrap_err(),
            "line 2: expected user;password"
        );
        assert!(parse("SEQUENTIAL\n").is_err());
    }
}

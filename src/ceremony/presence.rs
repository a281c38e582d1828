//! Those present: the operator, the witnesses and a person for each custodian role the script
//! names, asked for at the start (and again on resume). Separation of duties is the point of a
//! ceremony, so each person holds one role: the operator is not a witness, no one is named
//! twice, and one person does not hold two custodians' tokens or shares.

use std::collections::BTreeMap;

use super::prompter::Prompter;
use super::script::Script;
use super::CeremonyError;

/// Asks for everyone present, by role, and checks that each person holds one role.
pub(super) fn ask(
    prompter: &mut dyn Prompter,
    script: &Script,
) -> Result<BTreeMap<String, Vec<String>>, CeremonyError> {
    let mut present = BTreeMap::new();
    present.insert("operator".to_string(), prompter.names("operator", 1)?);
    present.insert(
        "witness".to_string(),
        prompter.names("witness", script.roles.witnesses)?,
    );
    for custodian in &script.roles.custodians {
        present.insert(custodian.clone(), prompter.names(custodian, 1)?);
    }
    check(&present)?;
    Ok(present)
}

/// Refuses a person named for two roles, or twice for one.
fn check(present: &BTreeMap<String, Vec<String>>) -> Result<(), CeremonyError> {
    let mut holder: BTreeMap<String, &str> = BTreeMap::new();
    for (role, names) in present {
        for name in names {
            // Names are compared as people would read them: case and spacing aside.
            let key = name
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if let Some(first) = holder.insert(key, role) {
                let said = if first == role {
                    format!("{name:?} is named twice as {role}")
                } else {
                    format!("{name:?} is named as {first} and as {role}")
                };
                return Err(CeremonyError::Presence(format!(
                    "{said}; each person present holds one role (the operator is not a \
                     witness, and no one holds two custodians' parts)"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(roles: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        roles
            .iter()
            .map(|(role, names)| {
                (
                    role.to_string(),
                    names.iter().map(|n| n.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn each_person_holds_one_role() {
        assert!(check(&present(&[
            ("operator", &["Olga"]),
            ("witness", &["Wim", "Wanda"]),
            ("custodian-1", &["Carol"]),
        ]))
        .is_ok());
        for (roles, said) in [
            (
                present(&[("operator", &["Olga"]), ("witness", &["Wim", "Wim"])]),
                "\"Wim\" is named twice as witness",
            ),
            (
                present(&[("operator", &["Olga"]), ("witness", &["Wim", "olga "])]),
                "\"olga \" is named as operator and as witness",
            ),
            (
                present(&[
                    ("operator", &["Olga"]),
                    ("custodian-1", &["Carol"]),
                    ("custodian-2", &["Carol"]),
                ]),
                "\"Carol\" is named as custodian-1 and as custodian-2",
            ),
        ] {
            let err = check(&roles).unwrap_err().to_string();
            assert!(err.contains(said), "{err}");
        }
    }
}

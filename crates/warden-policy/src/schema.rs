//! Warden's Cedar schema and the names it declares.
//!
//! This module owns the vocabulary shared by policies and requests: the schema text, the
//! entity type names and the one action per HTTP method. It parses each name once, when a
//! policy set is built, so a decision only clones them. It must not know about files or
//! about any particular request.

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};

use crate::PolicyError;

/// The schema every policy is validated against (Cedar's human-readable schema syntax).
pub const SCHEMA_SRC: &str = include_str!("warden.cedarschema");

/// The HTTP methods Warden's schema declares, each a Cedar action `Warden::Action::"<METHOD>"`.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Parses [`SCHEMA_SRC`].
pub fn schema() -> Result<Schema, PolicyError> {
    // Warnings here (shadowed names and the like) would be a mistake in our own schema: the
    // crate's tests assert there are none, so production need not look at them.
    let (schema, _warnings) =
        Schema::from_cedarschema_str(SCHEMA_SRC).map_err(|e| PolicyError::Schema(e.to_string()))?;
    Ok(schema)
}

/// The parsed names of the schema, ready to be cloned into each request.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub tenant: EntityTypeName,
    pub principal: EntityTypeName,
    pub resource: EntityTypeName,
    /// In the order of [`METHODS`].
    actions: [EntityUid; METHODS.len()],
}

impl Names {
    pub fn new() -> Result<Self, PolicyError> {
        let name = |s: &str| {
            EntityTypeName::from_str(s)
                .map_err(|e| PolicyError::Schema(format!("entity type `{s}`: {e}")))
        };
        let action_type = name("Warden::Action")?;
        let actions = METHODS
            .map(|m| EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(m)));
        Ok(Self {
            tenant: name("Warden::Tenant")?,
            principal: name("Warden::Principal")?,
            resource: name("Warden::Resource")?,
            actions,
        })
    }

    /// The action for an HTTP method, or `None` when the schema has no such method.
    pub fn action(&self, method: &str) -> Option<&EntityUid> {
        METHODS
            .iter()
            .zip(&self.actions)
            .find(|(m, _)| **m == method)
            .map(|(_, uid)| uid)
    }

    pub fn tenant_uid(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.tenant.clone(), EntityId::new(id))
    }

    pub fn principal_uid(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.principal.clone(), EntityId::new(id))
    }

    pub fn resource_uid(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.resource.clone(), EntityId::new(id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    #[test]
    fn schema_parses_without_warnings() {
        let (schema, warnings) = Schema::from_cedarschema_str(SCHEMA_SRC).unwrap();
        assert_eq!(warnings.count(), 0);
        let actions: Vec<String> = schema
            .actions()
            .map(|a| a.id().unescaped().into())
            .collect();
        for m in METHODS {
            assert!(actions.iter().any(|a| a == m), "schema lacks action {m}");
        }
        assert_eq!(actions.len(), METHODS.len());
    }

    #[test]
    fn every_method_has_an_action() {
        let names = Names::new().unwrap();
        for m in METHODS {
            assert_eq!(names.action(m).unwrap().id().unescaped(), m);
        }
        assert!(names.action("get").is_none());
        assert!(names.action("TRACE").is_none());
    }
}

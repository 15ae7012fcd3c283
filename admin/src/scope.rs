//! What an admin request needs from a token. The root token may do anything; a scoped
//! token is bound to one gateway and holds `<resource>:read` or `<resource>:write`
//! scopes (`write` includes `read`). Catalogs are readable with any valid token; the
//! gateway list, gateway creation and token management need the root token.

use axum::http::Method;
use sluice_shared::store::AdminToken;
use uuid::Uuid;

/// Resources a scope can name.
pub const RESOURCES: [&str; 6] = [
    "gateways",
    "registries",
    "consumers",
    "auths",
    "policies",
    "roles",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    RootOnly,
    AnyToken,
    Gateway {
        gateway_id: Uuid,
        resource: &'static str,
        access: Access,
    },
}

/// Whether `scope` is well formed.
pub fn valid_scope(scope: &str) -> bool {
    scope.split_once(':').is_some_and(|(resource, access)| {
        RESOURCES.contains(&resource) && matches!(access, "read" | "write")
    })
}

/// What a request with this method and path needs.
pub fn need(method: &Method, path: &str) -> Need {
    let access = if matches!(*method, Method::GET | Method::HEAD) {
        Access::Read
    } else {
        Access::Write
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", catalog] if catalog.ends_with("-catalog") => Need::AnyToken,
        ["v1", "gateways", id, rest @ ..] => {
            let Ok(gateway_id) = Uuid::parse_str(id) else {
                return Need::RootOnly;
            };
            let resource = match rest.first() {
                None => "gateways",
                Some(r) => match RESOURCES.iter().find(|known| *known == r) {
                    Some(known) => known,
                    None => return Need::RootOnly,
                },
            };
            // Deleting a whole gateway is the root's decision.
            if rest.is_empty() && *method == Method::DELETE {
                return Need::RootOnly;
            }
            Need::Gateway {
                gateway_id,
                resource,
                access,
            }
        }
        _ => Need::RootOnly,
    }
}

/// Whether a scoped token may do what a request needs.
pub fn allows(token: &AdminToken, need: &Need) -> bool {
    match need {
        Need::RootOnly => false,
        Need::AnyToken => true,
        Need::Gateway {
            gateway_id,
            resource,
            access,
        } => {
            *gateway_id == token.gateway_id
                && token.scopes.iter().any(|s| {
                    s.split_once(':').is_some_and(|(r, a)| {
                        r == *resource && (a == "write" || (a == "read" && *access == Access::Read))
                    })
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(gateway_id: Uuid, scopes: &[&str]) -> AdminToken {
        AdminToken {
            id: Uuid::now_v7(),
            name: "t".into(),
            gateway_id,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: String::new(),
        }
    }

    #[test]
    fn scopes_bind_to_a_gateway_resource_and_access() {
        let (gw, other) = (Uuid::now_v7(), Uuid::now_v7());
        let t = token(gw, &["registries:read", "consumers:write"]);
        let at = |m: Method, p: String| allows(&t, &need(&m, &p));
        assert!(at(Method::GET, format!("/v1/gateways/{gw}/registries")));
        assert!(!at(Method::POST, format!("/v1/gateways/{gw}/registries")));
        assert!(at(
            Method::POST,
            format!("/v1/gateways/{gw}/consumers/x/registries/y")
        ));
        assert!(at(Method::GET, format!("/v1/gateways/{gw}/consumers")));
        assert!(!at(Method::GET, format!("/v1/gateways/{other}/registries")));
        assert!(!at(Method::GET, format!("/v1/gateways/{gw}/auths")));
        assert!(!at(Method::GET, format!("/v1/gateways/{gw}")));
        assert!(at(Method::GET, "/v1/models-catalog".into()));
        assert!(!at(Method::GET, "/v1/gateways".into()));
        assert!(!at(Method::POST, "/v1/admin-tokens".into()));
        let owner = token(gw, &["gateways:write"]);
        assert!(allows(
            &owner,
            &need(&Method::PUT, &format!("/v1/gateways/{gw}"))
        ));
        assert!(!allows(
            &owner,
            &need(&Method::DELETE, &format!("/v1/gateways/{gw}"))
        ));
        assert!(
            valid_scope("roles:write")
                && !valid_scope("roles:admin")
                && !valid_scope("tokens:read")
        );
    }
}

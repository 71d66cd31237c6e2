//! The four services, in the order they start, and the ports the native stack gives them
//! (the gateway's upstreams point there). The end-to-end tests let each service pick a
//! free port instead.

/// A service binary and its port in the native stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    pub native_port: u16,
}

pub const STACK: [Service; 4] = [
    Service {
        name: "auth-service",
        native_port: 8081,
    },
    Service {
        name: "catalog-service",
        native_port: 8082,
    },
    Service {
        name: "purchase-service",
        native_port: 8083,
    },
    Service {
        name: "stock-writer",
        native_port: 8084,
    },
];

/// The service names, in start order.
pub const SERVICES: [&str; STACK.len()] = names();

/// The gateway's port in the native stack (`GATEWAY_PORT` overrides it).
pub const GATEWAY_NATIVE_PORT: u16 = 8080;

const fn names() -> [&'static str; STACK.len()] {
    let mut names = [""; STACK.len()];
    let mut i = 0;
    while i < STACK.len() {
        names[i] = STACK[i].name;
        i += 1;
    }
    names
}

/// The native port of a service, `None` for a name that is not one.
pub fn native_port(service: &str) -> Option<u16> {
    STACK
        .iter()
        .find(|s| s.name == service)
        .map(|s| s.native_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports_come_from_one_list() {
        assert_eq!(
            SERVICES,
            [
                "auth-service",
                "catalog-service",
                "purchase-service",
                "stock-writer"
            ]
        );
        assert_eq!(native_port("purchase-service"), Some(8083));
        assert_eq!(native_port("gateway"), None);
    }
}

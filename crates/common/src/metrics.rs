//! Prometheus metrics: a registry per service with the HTTP request metrics every
//! service shares and whether its backends answer; services register their own metrics
//! into it before serving.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    backend_up: Family<BackendLabels, Gauge>,
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::with_labels(
            [(
                std::borrow::Cow::Borrowed("service"),
                std::borrow::Cow::Owned(service.to_owned()),
            )]
            .into_iter(),
        );
        let requests = Family::<HttpLabels, Counter>::default();
        let latency = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let backend_up = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "backend_up",
            "Whether the service's check of a backend (redis, mysql, rabbitmq) passed at the last scrape",
            backend_up.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            backend_up,
        }
    }

    /// For registering a service's own metrics before the registry is shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Registers a service's own metric and hands it back, for the code that updates it.
    pub fn register<M>(&mut self, name: &str, help: &str, metric: M) -> M
    where
        M: prometheus_client::registry::Metric + Clone,
    {
        self.registry.register(name, help, metric.clone());
        metric
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// Records whether a backend answered the service's readiness check.
    pub fn set_backend_up(&self, backend: &'static str, up: bool) {
        self.backend_up
            .get_or_create(&BackendLabels { backend })
            .set(i64::from(up));
    }

    /// The registry in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_requests_show_up_in_the_exposition() {
        let metrics = Metrics::new("test-service");
        metrics.observe_request("GET", "/api/v1/items", 200, Duration::from_millis(3));
        let text = metrics.encode();
        assert!(text.contains("http_requests_total{"), "{text}");
        assert!(text.contains("route=\"/api/v1/items\""), "{text}");
        assert!(text.contains("service=\"test-service\""), "{text}");
    }

    #[test]
    fn a_backend_is_up_or_down_as_last_checked() {
        let metrics = Metrics::new("test-service");
        metrics.set_backend_up("redis", true);
        metrics.set_backend_up("rabbitmq", true);
        metrics.set_backend_up("rabbitmq", false);
        let text = metrics.encode();
        assert!(
            text.contains("backend_up{service=\"test-service\",backend=\"redis\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("backend_up{service=\"test-service\",backend=\"rabbitmq\"} 0"),
            "{text}"
        );
    }
}

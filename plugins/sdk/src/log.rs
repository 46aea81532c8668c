//! Log forwarding: a `tracing` layer inside the plugin that sends every event, with the fields
//! of its spans, to the host, which emits it into its own subscriber under the plugin's name.
//!
//! A plugin library has its own copy of `tracing` and its globals, so without this layer its
//! events would go nowhere.

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use vdi_contracts::abi::{guest, AbiLevel};

/// Sends plugin events to the host.
#[derive(Debug, Default)]
pub struct HostLayer;

/// Fields of a span, kept in its extensions so events inside it carry them.
struct SpanFields(Map<String, Value>);

/// Collects event or span fields as JSON.
#[derive(Default)]
struct JsonVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }
}

impl JsonVisitor {
    fn insert(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(text) => text,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl<S> Layer<S> for HostLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = JsonVisitor::default();
        attrs.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(visitor.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = JsonVisitor::default();
        values.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(fields) = extensions.get_mut::<SpanFields>() {
                fields.0.extend(visitor.fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.0.clone());
                }
            }
        }
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        fields.extend(visitor.fields);
        let metadata = event.metadata();
        guest::host_log(
            abi_level(*metadata.level()),
            metadata.target(),
            visitor.message.as_deref().unwrap_or_default(),
            &Value::Object(fields).to_string(),
        );
    }
}

fn abi_level(level: Level) -> AbiLevel {
    match level {
        Level::ERROR => AbiLevel::Error,
        Level::WARN => AbiLevel::Warn,
        Level::INFO => AbiLevel::Info,
        Level::DEBUG => AbiLevel::Debug,
        Level::TRACE => AbiLevel::Trace,
    }
}

/// Installs [`HostLayer`] as the plugin's global subscriber, and a panic hook that reports
/// panics through it instead of printing to stderr. Events at `debug` and above are forwarded
/// (HTTP and TLS internals from `info`); the host's filter decides what it prints.
///
/// The panic hook belongs to the plugin's own copy of the standard library, so it receives
/// only panics in plugin code; the gateway still turns each one into an error envelope.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let fields = serde_json::json!({ "location": location }).to_string();
        guest::host_log(
            AbiLevel::Error,
            "panic",
            &format!("Plugin panicked: {message}"),
            &fields,
        );
    }));
    let filter = Targets::new()
        .with_default(LevelFilter::DEBUG)
        .with_target("hyper", LevelFilter::INFO)
        .with_target("hyper_util", LevelFilter::INFO)
        .with_target("h2", LevelFilter::INFO)
        .with_target("rustls", LevelFilter::INFO)
        .with_target("reqwest", LevelFilter::INFO);
    // A second install (the library's entry ran twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(HostLayer.with_filter(filter))
        .try_init();
}

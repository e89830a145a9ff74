//! The words of the portal and the console in Japanese and English: Fluent message files
//! (`locales/{ja,en}/*.ftl`) compiled into the binary, and how a request's language is
//! chosen (the user's setting, else `Accept-Language`, else the tenant's default).
//! Dates are shown in the tenant's time zone with the zone named; sizes in binary units.

use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use kura_service::model::Language;

/// Every message file, per language: the portal's, and the console's (which uses the
/// portal's words where they are the same). A key missing in one language, or defined
/// twice, is a test failure.
const SOURCES: &[(Language, &[&str])] = &[
    (
        Language::Ja,
        &[
            include_str!("../../locales/ja/portal.ftl"),
            include_str!("../../locales/ja/console.ftl"),
        ],
    ),
    (
        Language::En,
        &[
            include_str!("../../locales/en/portal.ftl"),
            include_str!("../../locales/en/console.ftl"),
        ],
    ),
];

type Bundle = FluentBundle<FluentResource>;

static BUNDLES: LazyLock<Vec<(Language, Bundle)>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(language, sources)| {
            let tag = language.as_str().parse().expect("language codes are valid tags");
            let mut bundle = FluentBundle::new_concurrent(vec![tag]);
            // Isolation marks (U+2068/2069) around values are for right-to-left scripts;
            // in Japanese and English they only surprise copy-and-paste.
            bundle.set_use_isolating(false);
            for source in *sources {
                let resource = FluentResource::try_new((*source).to_owned())
                    .unwrap_or_else(|(_, errors)| panic!("{language} messages do not parse: {errors:?}"));
                bundle
                    .add_resource(resource)
                    .unwrap_or_else(|errors| panic!("{language} messages clash: {errors:?}"));
            }
            (*language, bundle)
        })
        .collect()
});

fn bundle(language: Language) -> &'static Bundle {
    BUNDLES
        .iter()
        .find(|(l, _)| *l == language)
        .map(|(_, bundle)| bundle)
        .expect("every language has a bundle")
}

/// The words and formats of one request: its language and the tenant's time zone.
#[derive(Debug, Clone)]
pub struct Tr {
    pub language: Language,
    zone: jiff::tz::TimeZone,
    zone_name: String,
}

impl Tr {
    /// Words in `language`, times in the IANA zone `zone` (UTC if it is unknown).
    pub fn new(language: Language, zone: &str) -> Tr {
        let (zone, zone_name) = match jiff::tz::TimeZone::get(zone) {
            Ok(tz) => (tz, zone.to_owned()),
            Err(_) => (jiff::tz::TimeZone::UTC, "UTC".to_owned()),
        };
        Tr {
            language,
            zone,
            zone_name,
        }
    }

    /// The `lang` attribute of the page.
    pub fn lang(&self) -> &'static str {
        self.language.as_str()
    }

    /// The message `key`; the key itself when it is missing (and a test fails).
    pub fn t(&self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message `key` with one named value.
    pub fn t1(&self, key: &str, name: &str, value: impl ToString) -> String {
        self.tn(key, [(name, value.to_string())])
    }

    /// The message `key` with two named values.
    pub fn t2(&self, key: &str, a: (&str, &dyn ToString), b: (&str, &dyn ToString)) -> String {
        self.tn(key, [(a.0, a.1.to_string()), (b.0, b.1.to_string())])
    }

    /// The message `key` with any number of named values.
    pub fn tn<'a>(&self, key: &str, values: impl IntoIterator<Item = (&'a str, String)>) -> String {
        let mut args = FluentArgs::new();
        for (name, value) in values {
            args.set(name, FluentValue::from(value));
        }
        self.format(key, Some(&args))
    }

    fn format(&self, key: &str, args: Option<&FluentArgs>) -> String {
        let bundle = bundle(self.language);
        let Some(pattern) = bundle.get_message(key).and_then(|message| message.value()) else {
            tracing::warn!(key, language = %self.language, "missing portal message");
            return key.to_owned();
        };
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(key, ?errors, "portal message did not format cleanly");
        }
        text.into_owned()
    }

    /// The name of an event-log action (its wire name, such as `machine.rename`) in the
    /// page's language; an action without a message keeps its wire name.
    pub fn action(&self, action: &str) -> String {
        let key = format!("action-{}", action.replace(['.', '_'], "-"));
        if bundle(self.language).has_message(&key) {
            self.t(&key)
        } else {
            action.to_owned()
        }
    }

    /// A moment for a table: `2026-12-02 15:34` in the tenant's zone.
    pub fn time(&self, ms: &i64) -> String {
        self.strftime(*ms, "%Y-%m-%d %H:%M")
    }

    /// A moment given in nanoseconds (as manifests keep it), for a table.
    pub fn time_ns(&self, ns: &i64) -> String {
        self.time(&ns.div_euclid(1_000_000))
    }

    /// A moment in a sentence: `2026年12月2日 15:34 (JST)` or `2 Dec 2026 15:34 (JST)`.
    pub fn time_long(&self, ms: &i64) -> String {
        let format = match self.language {
            Language::Ja => "%Y年%-m月%-d日 %H:%M (%Z)",
            Language::En => "%-d %b %Y %H:%M (%Z)",
        };
        self.strftime(*ms, format)
    }

    /// An optional moment for a table, or a dash.
    pub fn time_or_dash(&self, ms: &Option<i64>) -> String {
        ms.map_or_else(|| "—".to_owned(), |ms| self.time(&ms))
    }

    /// A window of time in a sentence (a maintenance window): `from – to`, from or until
    /// one end, or "not given".
    pub fn window(&self, starts_ms: Option<i64>, ends_ms: Option<i64>) -> String {
        match (starts_ms, ends_ms) {
            (Some(starts), Some(ends)) => format!("{} – {}", self.time_long(&starts), self.time_long(&ends)),
            (Some(starts), None) => self.t1("window-from", "time", self.time_long(&starts)),
            (None, Some(ends)) => self.t1("window-until", "time", self.time_long(&ends)),
            (None, None) => self.t("window-none"),
        }
    }

    /// The zone the page's times are in at `now_ms`, as shown under tables:
    /// `Asia/Tokyo (JST)` (the abbreviation changes with daylight saving time).
    pub fn zone_at(&self, now_ms: &i64) -> String {
        let abbreviation = self.strftime(*now_ms, "%Z");
        if abbreviation == self.zone_name {
            abbreviation
        } else {
            format!("{} ({abbreviation})", self.zone_name)
        }
    }

    fn strftime(&self, ms: i64, format: &str) -> String {
        jiff::Timestamp::from_millisecond(ms).map_or_else(
            |_| String::new(),
            |t| {
                t.to_zoned_datetime(self.zone.clone())
                    .strftime(format)
                    .to_string()
            },
        )
    }

    /// Bytes in binary units: `1.5 GiB`.
    pub fn bytes(&self, n: &u64) -> String {
        kura_service::ops::vault::human_bytes(*n)
    }

    /// A whole number with digit grouping: `20,000`.
    pub fn count(&self, n: &u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(digit);
        }
        out
    }
}

/// The language an `Accept-Language` header prefers among ours, by its q-values.
pub fn from_accept_language(header: &str) -> Option<Language> {
    header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.trim().split(';');
            let tag = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            let primary = tag.split('-').next()?;
            Language::parse(primary).map(|language| (language, q))
        })
        .filter(|(_, q)| *q > 0.0)
        .fold(None, |best: Option<(Language, f32)>, (language, q)| match best {
            Some((_, best_q)) if best_q >= q => best,
            _ => Some((language, q)),
        })
        .map(|(language, _)| language)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(sources: &[&str]) -> BTreeSet<String> {
        sources
            .iter()
            .flat_map(|source| {
                let resource = FluentResource::try_new((*source).to_owned()).expect("messages parse");
                resource
                    .entries()
                    .filter_map(|entry| match entry {
                        fluent_syntax::ast::Entry::Message(message) => Some(message.id.name.to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn both_languages_have_the_same_messages() {
        let ja = keys(SOURCES[0].1);
        let en = keys(SOURCES[1].1);
        let only_ja: Vec<_> = ja.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&ja).collect();
        assert!(
            only_ja.is_empty() && only_en.is_empty(),
            "only in ja: {only_ja:?}; only in en: {only_en:?}"
        );
    }

    /// Every `t("…")`, `t1("…"` and `t2("…"` in a template names a message that exists.
    #[test]
    fn every_message_a_template_uses_exists() {
        let known = keys(SOURCES[1].1);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut missing = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "html") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in ["t(\"", "t1(\"", "t2(\""] {
                for piece in text.split(call).skip(1) {
                    let key = piece.split('"').next().unwrap_or_default();
                    if !known.contains(key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "templates use unknown messages: {missing:#?}");
    }

    #[test]
    fn every_event_action_has_a_name() {
        let known = keys(SOURCES[1].1);
        let missing: Vec<_> = kura_service::audit::Action::ALL
            .iter()
            .map(|action| format!("action-{}", action.as_str().replace(['.', '_'], "-")))
            .filter(|key| !known.contains(key))
            .collect();
        assert!(missing.is_empty(), "actions without a name: {missing:?}");
        assert_eq!(
            Tr::new(Language::Ja, "UTC").action("machine.rename"),
            "マシン名の変更"
        );
        assert_eq!(Tr::new(Language::En, "UTC").action("no.such"), "no.such");
    }

    #[test]
    fn accept_language_picks_our_best_match() {
        assert_eq!(
            from_accept_language("ja-JP,ja;q=0.9,en;q=0.8"),
            Some(Language::Ja)
        );
        assert_eq!(
            from_accept_language("en-US,en;q=0.9,ja;q=0.5"),
            Some(Language::En)
        );
        assert_eq!(
            from_accept_language("fr-FR, ja;q=0.3, en;q=0.7"),
            Some(Language::En)
        );
        assert_eq!(from_accept_language("fr, de"), None);
        assert_eq!(from_accept_language("en;q=0, ja;q=0.1"), Some(Language::Ja));
    }

    #[test]
    fn times_are_in_the_tenant_zone_and_name_it() {
        let tr = Tr::new(Language::Ja, "Asia/Tokyo");
        // 2026-12-02T06:34:00Z is 15:34 in Tokyo.
        let ms = 1_796_193_240_000;
        assert_eq!(tr.time(&ms), "2026-12-02 15:34");
        assert_eq!(tr.time_long(&ms), "2026年12月2日 15:34 (JST)");
        assert_eq!(
            Tr::new(Language::En, "Asia/Tokyo").time_long(&ms),
            "2 Dec 2026 15:34 (JST)"
        );
        assert_eq!(tr.zone_at(&ms), "Asia/Tokyo (JST)");
        assert_eq!(Tr::new(Language::En, "Not/AZone").time(&ms), "2026-12-02 06:34");
        assert_eq!(tr.count(&20_000), "20,000");
        assert_eq!(tr.count(&999), "999");
    }
}

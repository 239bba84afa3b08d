//! Handlebars templates for pages and mail. herald carries its own copies
//! (the files in `templates/`, built into the binary); a site owner
//! overrides any of them by putting a file of the same name in the
//! directory named by `templates_dir`. A template that does not parse stops
//! herald at start, with the file and line.

use std::path::Path;

use anyhow::Context;
use handlebars::Handlebars;
use serde::Serialize;

/// Name (without `.hbs`) and built-in text of every template.
const BUILT_IN: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html.hbs")),
    (
        "subscribe.html",
        include_str!("../templates/subscribe.html.hbs"),
    ),
    (
        "message.html",
        include_str!("../templates/message.html.hbs"),
    ),
    (
        "unsubscribe.html",
        include_str!("../templates/unsubscribe.html.hbs"),
    ),
    (
        "preferences.html",
        include_str!("../templates/preferences.html.hbs"),
    ),
    ("confirm.txt", include_str!("../templates/confirm.txt.hbs")),
    (
        "confirm.html",
        include_str!("../templates/confirm.html.hbs"),
    ),
];

#[derive(Debug)]
pub struct Templates {
    registry: Handlebars<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<name>.hbs` where that
    /// file exists.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        for (name, built_in) in BUILT_IN {
            let file = dir
                .map(|d| d.join(format!("{name}.hbs")))
                .filter(|p| p.is_file());
            let (text, origin) = match &file {
                Some(path) => (
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read template {}", path.display()))?,
                    path.display().to_string(),
                ),
                None => (built_in.to_string(), format!("built-in {name}.hbs")),
            };
            // The layout is used as a partial block by the pages.
            if *name == "layout.html" {
                registry
                    .register_partial("layout", &text)
                    .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
            }
            registry
                .register_template_string(name, text)
                .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
        }
        Ok(Templates { registry })
    }

    /// HTML templates escape every value; `.txt` ones do not.
    pub fn render(&self, name: &str, data: &impl Serialize) -> anyhow::Result<String> {
        if name.ends_with(".txt") {
            let mut plain = self.registry.clone();
            plain.register_escape_fn(handlebars::no_escape);
            return plain
                .render(name, data)
                .with_context(|| format!("rendering template {name}"));
        }
        self.registry
            .render(name, data)
            .with_context(|| format!("rendering template {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_render_and_escape() {
        let t = Templates::load(None).unwrap();
        let html = t
            .render(
                "message.html",
                &serde_json::json!({"language": "en", "site_title": "<Site>", "title": "T", "kind": "ok", "message": "<b>x</b>", "link": null}),
            )
            .unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("&lt;Site&gt;"));
    }

    #[test]
    fn an_override_replaces_a_template_and_a_broken_one_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("confirm.txt.hbs"), "Confirm: {{{link}}}\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let out = t
            .render(
                "confirm.txt",
                &serde_json::json!({"link": "https://x/?a=1&b=2"}),
            )
            .unwrap();
        assert_eq!(out, "Confirm: https://x/?a=1&b=2\n");
        std::fs::write(
            dir.path().join("message.html.hbs"),
            "line one\nline two {{name}\n",
        )
        .unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("message.html.hbs"), "{err}");
        assert!(err.contains("\"message.html\":2:"), "names the line: {err}");
    }
}

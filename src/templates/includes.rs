//! Which template includes which (`{{> name}}`, `{{#> name}}…{{/name}}`),
//! checked when the templates are loaded. Handlebars follows includes
//! without a limit, so two overrides that include each other (`layout` ->
//! `message.html` -> `layout`) overflow the stack and abort the process at
//! the first page view. Here every include is known before anything is
//! rendered: a chain that leads back to where it started, or nests deeper
//! than [`MAX_DEPTH`], or an include by a computed name (which could not be
//! followed), stops herald at start with the chain in the message.
//!
//! Inline partials (`{{#*inline "name"}}`) are followed too, by name across
//! all templates, which may see a cycle where the scopes would not allow
//! one; templates that need that are rare.

use std::collections::{BTreeMap, BTreeSet};

use handlebars::template::{Parameter, Template, TemplateElement};
use serde_json::Value;

/// Deepest chain of includes allowed (herald's own go three deep).
pub const MAX_DEPTH: usize = 16;

/// Prefix of the graph's nodes for inline partials, apart from templates.
const INLINE: &str = "inline ";

/// Templates and what they include.
#[derive(Debug, Default)]
pub struct Includes {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Includes {
    /// Adds template `name` with its parsed `template`. `aliases` maps a
    /// partial name to the template it is (`layout` -> `layout.html`).
    pub fn add(
        &mut self,
        name: &str,
        template: &Template,
        aliases: &[(&str, &str)],
    ) -> Result<(), String> {
        let mut found = Found::default();
        walk(template, &mut found)?;
        let resolve = |n: &str| {
            aliases
                .iter()
                .find(|(alias, _)| *alias == n)
                .map_or(n.to_string(), |(_, real)| real.to_string())
        };
        let targets = |refs: &BTreeSet<String>| -> BTreeSet<String> {
            refs.iter()
                .flat_map(|r| [resolve(r), format!("{INLINE}{r}")])
                .collect()
        };
        self.edges
            .entry(name.to_string())
            .or_default()
            .extend(targets(&found.refs));
        for (inline, refs) in &found.inline {
            self.edges
                .entry(format!("{INLINE}{inline}"))
                .or_default()
                .extend(targets(refs));
        }
        Ok(())
    }

    /// The first chain that leads back to its start or is deeper than
    /// [`MAX_DEPTH`], described for an error message.
    pub fn check(&self) -> Result<(), String> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        for start in self.edges.keys() {
            let mut path = Vec::new();
            self.visit(start, &mut path, &mut depth)?;
        }
        Ok(())
    }

    /// Depth-first: the longest chain below `node`, memoised in `depth`.
    fn visit<'a>(
        &'a self,
        node: &'a str,
        path: &mut Vec<&'a str>,
        depth: &mut BTreeMap<&'a str, usize>,
    ) -> Result<usize, String> {
        if let Some(d) = depth.get(node) {
            return Ok(*d);
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            let chain: Vec<&str> = path[at..].iter().copied().chain([node]).collect();
            return Err(format!(
                "templates include each other in a loop, which would never end: {}",
                shown(&chain)
            ));
        }
        path.push(node);
        let mut deepest = 0;
        for next in self.edges.get(node).into_iter().flatten() {
            if !self.edges.contains_key(next) {
                continue; // not a template: Handlebars reports it by name
            }
            deepest = deepest.max(1 + self.visit(next, path, depth)?);
        }
        if deepest > MAX_DEPTH {
            return Err(format!(
                "template {node} includes templates {deepest} deep; at most {MAX_DEPTH} are allowed"
            ));
        }
        path.pop();
        depth.insert(node, deepest);
        Ok(deepest)
    }
}

fn shown(chain: &[&str]) -> String {
    chain
        .iter()
        .map(|n| {
            n.strip_prefix(INLINE)
                .map_or(n.to_string(), |i| format!("inline partial \"{i}\""))
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// What one template names: included partials, and inline partials it
/// defines with what those include.
#[derive(Default)]
struct Found {
    refs: BTreeSet<String>,
    inline: BTreeMap<String, BTreeSet<String>>,
}

fn walk(template: &Template, found: &mut Found) -> Result<(), String> {
    for element in &template.elements {
        match element {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                let name = literal_name(&d.name)?;
                if name != "@partial-block" {
                    found.refs.insert(name);
                }
                if let Some(t) = &d.template {
                    walk(t, found)?;
                }
            }
            TemplateElement::HelperBlock(h) => {
                for t in h.template.iter().chain(&h.inverse) {
                    walk(t, found)?;
                }
            }
            TemplateElement::DecoratorBlock(d) => {
                let Some(body) = &d.template else { continue };
                let mut inner = Found::default();
                walk(body, &mut inner)?;
                if d.name.as_name() == Some("inline") {
                    let name = d.params.first().map(literal_name).transpose()?;
                    if let Some(name) = name {
                        found
                            .inline
                            .entry(name)
                            .or_default()
                            .extend(inner.refs.iter().cloned());
                    }
                }
                found.refs.extend(inner.refs);
                found.inline.extend(inner.inline);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The name an include names, which must be written out: a computed name
/// (`{{> (lookup …)}}`) could lead anywhere.
fn literal_name(p: &Parameter) -> Result<String, String> {
    if let Some(name) = p.as_name() {
        return Ok(name.to_string());
    }
    match p {
        Parameter::Literal(Value::String(s)) => Ok(s.clone()),
        _ => Err(
            "an include names its partial by a computed expression; write the partial's name"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(templates: &[(&str, &str)]) -> Result<(), String> {
        let mut g = Includes::default();
        for (name, text) in templates {
            g.add(
                name,
                &Template::compile(text).unwrap(),
                &[("layout", "layout.html")],
            )?;
        }
        g.check()
    }

    #[test]
    fn includes_that_lead_back_are_refused_with_the_chain() {
        let err = graph(&[
            ("layout.html", "<main>{{> message.html}}</main>"),
            ("message.html", "{{#> layout}}<p>{{message}}</p>{{/layout}}"),
        ])
        .unwrap_err();
        assert!(
            err.contains("layout.html -> message.html -> layout.html"),
            "{err}"
        );
        assert!(graph(&[("a", "{{#if x}}{{else}}{{> a}}{{/if}}")]).is_err());
        let err = graph(&[("a", "{{#*inline \"x\"}}{{> x}}{{/inline}}{{> x}}")]).unwrap_err();
        assert!(err.contains("inline partial \"x\""), "{err}");
        let err = graph(&[("a", "{{> (concat \"a\" \"\")}}")]).unwrap_err();
        assert!(err.contains("computed"), "{err}");
    }

    #[test]
    fn herald_s_own_shape_and_long_chains_within_the_limit_pass() {
        graph(&[
            ("layout.html", "<main>{{> @partial-block}}</main>"),
            (
                "message.html",
                "{{#> layout title=title}}<p>{{message}}</p>{{/layout}}",
            ),
            ("subscribe.html", "{{#> layout}}{{> nosuch}}{{/layout}}"),
        ])
        .unwrap();
        let chain: Vec<(String, String)> = (0..=MAX_DEPTH + 1)
            .map(|i| (format!("t{i}"), format!("{{{{> t{}}}}}", i + 1)))
            .collect();
        let refs: Vec<(&str, &str)> = chain
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        graph(&refs[1..]).unwrap();
        let err = graph(&refs).unwrap_err();
        assert!(err.contains("deep"), "{err}");
    }
}

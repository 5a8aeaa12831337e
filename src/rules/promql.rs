//! PromQL helpers: `{{.window}}` templates, parsing, input selectors, grouping checks.

use std::collections::BTreeSet;

use promql_parser::label::{MatchOp, Matcher, METRIC_NAME};
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};

/// The placeholder every windowed SLI query must contain.
pub const WINDOW_VAR: &str = ".window";
/// Optional placeholder: the grouping labels, comma-separated.
pub const BY_VAR: &str = ".by";

/// Names of the `{{ … }}` placeholders in `template`, or why it is malformed.
pub fn template_vars(template: &str) -> Result<Vec<String>, String> {
    let mut vars = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed `{{` in query".to_owned())?;
        let var = after[..end].trim();
        if var != WINDOW_VAR && var != BY_VAR {
            return Err(format!(
                "unknown placeholder `{{{{{var}}}}}` (only `{{{{.window}}}}` and `{{{{.by}}}}` exist)"
            ));
        }
        vars.push(var.to_owned());
        rest = &after[end + 2..];
    }
    Ok(vars)
}

/// Replaces `{{.window}}` and `{{.by}}` (spaces inside the braces allowed, as in Go templates).
///
/// Unknown placeholders are left alone: validation rejects them before rendering.
pub fn expand(template: &str, window: &str, by: &[String]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        match after[..end].trim() {
            WINDOW_VAR => out.push_str(window),
            BY_VAR => out.push_str(&by.join(", ")),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Parses a PromQL expression.
pub fn parse(expr: &str) -> Result<Expr, String> {
    parser::parse(expr)
}

/// Whether `expr` is a bare series selector such as `up{job="x"}`.
pub fn is_selector(expr: &str) -> bool {
    matches!(parse(expr), Ok(Expr::VectorSelector(_)))
}

/// Checks that every series `expr` returns comes out of an aggregation that keeps all of
/// `labels`, i.e. the SLI aggregates across the landscape down to one series per group.
pub fn check_aggregates_by(expr: &Expr, labels: &[String]) -> Result<(), String> {
    match expr {
        Expr::Aggregate(agg) => {
            let keeps = |l: &String| match &agg.modifier {
                Some(LabelModifier::Include(by)) => by.labels.contains(l),
                Some(LabelModifier::Exclude(without)) => !without.labels.contains(l),
                None => false,
            };
            match labels.iter().find(|l| !keeps(l)) {
                Some(l) => Err(format!(
                    "the aggregation `{expr}` drops grouping label `{l}`: use `by ({})`",
                    labels.join(", ")
                )),
                None => Ok(()),
            }
        }
        Expr::Binary(b) => {
            check_aggregates_by(&b.lhs, labels)?;
            check_aggregates_by(&b.rhs, labels)
        }
        Expr::Paren(p) => check_aggregates_by(&p.expr, labels),
        Expr::Unary(u) => check_aggregates_by(&u.expr, labels),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .try_for_each(|a| check_aggregates_by(a, labels)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Subquery(_)
        | Expr::Extension(_) => Err(format!(
            "`{expr}` is not aggregated: wrap it in `sum by ({}) (…)` (or another aggregation)",
            labels.join(", ")
        )),
    }
}

/// Adds the canonical text of every series selector in `expr` to `out`.
pub fn collect_selectors(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::VectorSelector(vs) => {
            out.insert(selector_text(vs));
        }
        Expr::MatrixSelector(ms) => {
            out.insert(selector_text(&ms.vs));
        }
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Subquery(s) => collect_selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// `name{a="b",c=~"d"}` with matchers sorted, the metric name outside the braces, and without
/// offset/`@` (federation selects series, not times).
fn selector_text(vs: &VectorSelector) -> String {
    let mut matchers: Vec<String> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| !(vs.name.is_some() && m.name == METRIC_NAME && m.op == MatchOp::Equal))
        .map(matcher_text)
        .collect();
    matchers.sort();
    matchers.dedup();
    let alternatives: Vec<String> = vs
        .matchers
        .or_matchers
        .iter()
        .map(|set| {
            let mut v: Vec<String> = set.iter().map(matcher_text).collect();
            v.sort();
            v.join(",")
        })
        .collect();
    let inner = if alternatives.is_empty() {
        matchers.join(",")
    } else {
        alternatives.join(" or ")
    };
    match (&vs.name, inner.is_empty()) {
        (Some(name), true) => name.clone(),
        (Some(name), false) => format!("{name}{{{inner}}}"),
        (None, _) => format!("{{{inner}}}"),
    }
}

fn matcher_text(m: &Matcher) -> String {
    let value = m.value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{}{}\"{value}\"", m.name, m.op)
}

/// Drops selectors made redundant by a bare selector of the same metric: federating `x`
/// already carries every `x{…}`.
pub fn minimise_selectors(selectors: BTreeSet<String>) -> Vec<String> {
    let bare: BTreeSet<String> = selectors
        .iter()
        .filter(|s| !s.contains('{'))
        .cloned()
        .collect();
    selectors
        .into_iter()
        .filter(|s| match s.split_once('{') {
            Some((name, _)) => name.is_empty() || !bare.contains(name),
            None => true,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            expand(
                "sum by ({{.by}}) (rate(x[{{ .window }}]))",
                "5m",
                &["a".into(), "b".into()]
            ),
            "sum by (a, b) (rate(x[5m]))"
        );
        assert_eq!(template_vars("x[{{.window}}]").unwrap(), vec![".window"]);
        assert!(template_vars("x[{{.windw}}]").is_err());
        assert!(template_vars("x[{{.window]").is_err());
    }

    #[test]
    fn selectors_are_canonical() {
        let mut out = BTreeSet::new();
        let e = parse(r#"sum(rate(a{z="1",b=~"x|y"}[5m])) / sum(rate(a[5m])) + on() b"#).unwrap();
        collect_selectors(&e, &mut out);
        assert_eq!(
            out.iter().cloned().collect::<Vec<_>>(),
            vec!["a", r#"a{b=~"x|y",z="1"}"#, "b"]
        );
        assert_eq!(minimise_selectors(out), vec!["a", "b"]);
    }

    #[test]
    fn aggregation_check() {
        let by = ["cluster".to_owned()];
        assert!(check_aggregates_by(&parse("sum by (cluster) (x) / 2").unwrap(), &by).is_ok());
        assert!(check_aggregates_by(&parse("sum without (pod) (x)").unwrap(), &by).is_ok());
        let e = check_aggregates_by(&parse("sum(x)").unwrap(), &by).unwrap_err();
        assert!(e.contains("drops grouping label `cluster`"), "{e}");
        assert!(check_aggregates_by(&parse("rate(x[5m])").unwrap(), &by).is_err());
    }
}

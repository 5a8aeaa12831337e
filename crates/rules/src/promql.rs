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

/// Checks that every series `expr` returns comes out of an aggregation that keeps all of
/// `labels`, i.e. the SLI aggregates across the landscape down to one series per group.
/// With `exact`, the aggregation must keep exactly `labels` (`by` the same set): bad and
/// total events then line up one to one.
pub fn check_aggregates_by(expr: &Expr, labels: &[String], exact: bool) -> Result<(), String> {
    let by_hint = || {
        if labels.is_empty() {
            "an aggregation such as `sum(…)`".to_owned()
        } else {
            format!(
                "`sum by ({}) (…)` (or another aggregation)",
                labels.join(", ")
            )
        }
    };
    match expr {
        Expr::Aggregate(agg) => match &agg.modifier {
            Some(LabelModifier::Include(by)) => {
                if let Some(l) = labels.iter().find(|l| !by.labels.contains(l)) {
                    return Err(format!(
                        "the aggregation `{expr}` drops grouping label `{l}`: use `by ({})`",
                        labels.join(", ")
                    ));
                }
                match by.labels.iter().find(|l| !labels.contains(l)) {
                    Some(extra) if exact => Err(format!(
                        "the aggregation `{expr}` keeps `{extra}`, which is no grouping label: aggregate `by ({})` so bad and total events line up",
                        labels.join(", ")
                    )),
                    _ => Ok(()),
                }
            }
            Some(LabelModifier::Exclude(without)) if !exact => {
                match labels.iter().find(|l| without.labels.contains(l)) {
                    Some(l) => Err(format!(
                        "the aggregation `{expr}` drops grouping label `{l}`: use `by ({})`",
                        labels.join(", ")
                    )),
                    None => Ok(()),
                }
            }
            Some(LabelModifier::Exclude(_)) => Err(format!(
                "the aggregation `{expr}` uses `without`, which keeps unknown labels: aggregate `by ({})`",
                labels.join(", ")
            )),
            None if labels.is_empty() => Ok(()),
            None => Err(format!(
                "the aggregation `{expr}` drops grouping label `{}`: use `by ({})`",
                labels[0],
                labels.join(", ")
            )),
        },
        Expr::Binary(b) => {
            check_aggregates_by(&b.lhs, labels, exact)?;
            check_aggregates_by(&b.rhs, labels, exact)
        }
        Expr::Paren(p) => check_aggregates_by(&p.expr, labels, exact),
        Expr::Unary(u) => check_aggregates_by(&u.expr, labels, exact),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .try_for_each(|a| check_aggregates_by(a, labels, exact)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Subquery(_)
        | Expr::Extension(_) => Err(format!(
            "`{expr}` is not aggregated: wrap it in {}",
            by_hint()
        )),
    }
}

/// Checks a query for the shoot tier: every series it returns is aggregated, and no `by` or
/// `on` names one of `absent` — labels a shoot Prometheus only adds on the way out (external
/// labels) or never has (`seed`), so they do not exist where the rule runs.
pub fn check_shoot_tier(expr: &Expr, absent: &[String]) -> Result<(), String> {
    check_aggregates_by(expr, &[], false)?;
    let mut problem = None;
    walk(expr, &mut |e| {
        let named = match e {
            Expr::Aggregate(a) => match &a.modifier {
                Some(LabelModifier::Include(by)) => by.labels.iter().find(|l| absent.contains(l)),
                _ => None,
            },
            Expr::Binary(b) => b
                .modifier
                .as_ref()
                .and_then(|m| m.matching.as_ref())
                .and_then(|m| match m {
                    LabelModifier::Include(on) => on.labels.iter().find(|l| absent.contains(l)),
                    LabelModifier::Exclude(_) => None,
                }),
            _ => None,
        };
        if let (Some(l), None) = (named, &problem) {
            problem = Some(format!(
                "`{e}` uses `{l}`, which the shoot Prometheus does not have while evaluating rules (external labels and `seed` are added only on the way out): aggregate without it, the runtime tier groups by it"
            ));
        }
    });
    problem.map_or(Ok(()), Err)
}

/// Calls `f` on `expr` and every sub-expression.
fn walk(expr: &Expr, f: &mut impl FnMut(&Expr)) {
    f(expr);
    match expr {
        Expr::Aggregate(a) => {
            walk(&a.expr, f);
            if let Some(p) = &a.param {
                walk(p, f);
            }
        }
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
        Expr::MatrixSelector(_)
        | Expr::VectorSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => {}
    }
}

/// A series selector of a query: canonical text and metric name (when it names one exactly).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selector {
    /// `name{a="b",c=~"d"}`, matchers sorted.
    pub text: String,
    /// The metric name, from `name{…}` or an `__name__="…"` matcher.
    pub metric: Option<String>,
}

/// Every series selector in `expr`.
pub fn selectors(expr: &Expr) -> Vec<Selector> {
    let mut out = Vec::new();
    walk(expr, &mut |e| {
        let vs = match e {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return,
        };
        let metric = vs.name.clone().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
                .map(|m| m.value.clone())
        });
        out.push(Selector {
            text: selector_text(vs),
            metric,
        });
    });
    out
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

/// Drops selectors made redundant by another of the same metric whose matchers are a subset of
/// theirs: federating `x` already carries every `x{…}`, `x{a="1"}` every `x{a="1",b="2"}`.
pub fn minimise_selectors(selectors: BTreeSet<String>) -> Vec<String> {
    let parts: Vec<(String, BTreeSet<String>)> = selectors.iter().map(|s| split(s)).collect();
    selectors
        .into_iter()
        .zip(&parts)
        .filter(|(_, (name, m))| {
            name.is_empty()
                || !parts
                    .iter()
                    .any(|(n, o)| n == name && o.len() < m.len() && o.is_subset(m))
        })
        .map(|(s, _)| s)
        .collect()
}

/// A canonical selector's metric name and matchers (commas inside quoted values kept).
fn split(selector: &str) -> (String, BTreeSet<String>) {
    let Some((name, inner)) = selector.split_once('{') else {
        return (selector.to_owned(), BTreeSet::new());
    };
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let (mut out, mut cur, mut quoted, mut escaped) =
        (BTreeSet::new(), String::new(), false, false);
    for c in inner.chars() {
        match c {
            ',' if !quoted => {
                out.insert(std::mem::take(&mut cur));
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            _ => {}
        }
        escaped = c == '\\' && !escaped;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.insert(cur);
    }
    (name.to_owned(), out)
}

#[cfg(test)]
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
        let e = parse(r#"sum(rate(a{z="1",b=~"x|y"}[5m])) / sum(rate(a[5m])) + on() b"#).unwrap();
        let found = selectors(&e);
        assert_eq!(found[0].metric.as_deref(), Some("a"));
        let named = selectors(&parse(r#"{__name__="c",x="1"}"#).unwrap());
        assert_eq!(named[0].metric.as_deref(), Some("c"));
        assert_eq!(
            selectors(&parse(r#"{__name__=~"c.*"}"#).unwrap())[0].metric,
            None
        );
        let out: BTreeSet<String> = found.into_iter().map(|s| s.text).collect();
        assert_eq!(
            out.iter().cloned().collect::<Vec<_>>(),
            vec!["a", r#"a{b=~"x|y",z="1"}"#, "b"]
        );
        assert_eq!(minimise_selectors(out), vec!["a", "b"]);
        let narrower: BTreeSet<String> = [
            r#"c{x="1"}"#,
            r#"c{x="1",y="a,b"}"#,
            r#"c{y="a,b"}"#,
            r#"d{x="1",y="2"}"#,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(
            minimise_selectors(narrower),
            vec![r#"c{x="1"}"#, r#"c{y="a,b"}"#, r#"d{x="1",y="2"}"#]
        );
    }

    #[test]
    fn shoot_tier_check() {
        let absent = ["cluster".to_owned(), "seed".to_owned()];
        let check = |q: &str| check_shoot_tier(&parse(q).unwrap(), &absent);
        assert!(check("sum(rate(x[5m]))").is_ok());
        assert!(check("sum by (verb) (rate(x[5m])) or vector(0)").is_ok());
        assert!(check("rate(x[5m])").unwrap_err().contains("not aggregated"));
        assert!(check("sum by (cluster) (rate(x[5m]))")
            .unwrap_err()
            .contains("`cluster`"));
        assert!(check("sum(x) / on (seed) sum(y)")
            .unwrap_err()
            .contains("`seed`"));
    }

    #[test]
    fn aggregation_check() {
        let by = ["cluster".to_owned()];
        let check = |q: &str, exact| check_aggregates_by(&parse(q).unwrap(), &by, exact);
        assert!(check("sum by (cluster) (x) / 2", true).is_ok());
        assert!(check("sum without (pod) (x)", false).is_ok());
        assert!(check("sum without (pod) (x)", true).is_err());
        assert!(check("sum by (cluster, verb) (x)", false).is_ok());
        let e = check("sum by (cluster, verb) (x)", true).unwrap_err();
        assert!(e.contains("keeps `verb`"), "{e}");
        let e = check("sum(x)", false).unwrap_err();
        assert!(e.contains("drops grouping label `cluster`"), "{e}");
        assert!(check("rate(x[5m])", false).is_err());
    }
}

//! Pins the identity label of every series to the certificate's seed.

use crate::config::receiver::IdentityMode;
use crate::remote_write::{Label, TimeSeries};

/// A series claimed another seed in `reject` mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("series carries {label}={claimed:?} but the client certificate is seed {actual:?}")]
pub struct IdentityMismatch {
    /// The identity label.
    pub label: String,
    /// What the series claimed.
    pub claimed: String,
    /// The certificate identity.
    pub actual: String,
}

/// Sets `label` to `seed` on a series whose labels are sorted by name, keeping them sorted.
///
/// In `Overwrite` mode any value the client sent is replaced; in `Reject` mode a different value
/// is an error (an equal one is fine).
pub fn enforce_identity(
    series: &mut TimeSeries,
    label: &str,
    seed: &str,
    mode: IdentityMode,
) -> Result<(), IdentityMismatch> {
    match series
        .labels
        .binary_search_by(|l| l.name.as_str().cmp(label))
    {
        Ok(i) => {
            let existing = &mut series.labels[i].value;
            if existing != seed {
                if mode == IdentityMode::Reject {
                    return Err(IdentityMismatch {
                        label: label.to_string(),
                        claimed: existing.clone(),
                        actual: seed.to_string(),
                    });
                }
                seed.clone_into(existing);
            }
        }
        Err(i) => series.labels.insert(
            i,
            Label {
                name: label.to_string(),
                value: seed.to_string(),
            },
        ),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)]) -> TimeSeries {
        crate::remote_write::test_series(labels, &[])
    }

    fn pairs(s: &TimeSeries) -> Vec<(&str, &str)> {
        s.labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn inserts_sorted_overwrites_and_rejects() {
        let mut s = series(&[("__name__", "up"), ("job", "x"), ("zone", "a")]);
        enforce_identity(&mut s, "seed", "aws-1", IdentityMode::Overwrite).unwrap();
        assert_eq!(
            pairs(&s),
            [
                ("__name__", "up"),
                ("job", "x"),
                ("seed", "aws-1"),
                ("zone", "a")
            ]
        );

        let mut s = series(&[("__name__", "up"), ("seed", "other")]);
        enforce_identity(&mut s, "seed", "aws-1", IdentityMode::Overwrite).unwrap();
        assert_eq!(pairs(&s), [("__name__", "up"), ("seed", "aws-1")]);

        let mut s = series(&[("__name__", "up"), ("seed", "other")]);
        let err = enforce_identity(&mut s, "seed", "aws-1", IdentityMode::Reject).unwrap_err();
        assert_eq!(err.claimed, "other");
        let mut s = series(&[("__name__", "up"), ("seed", "aws-1")]);
        enforce_identity(&mut s, "seed", "aws-1", IdentityMode::Reject).unwrap();
    }
}

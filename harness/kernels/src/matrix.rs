//! `images/kernels.yaml`: which kernels the harness tests, and where each one comes from.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    #[serde(default)]
    defaults: Defaults,
    kernels: Vec<RawKernel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    flavour: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    name: String,
    suite: String,
    compiler: String,
    flavour: Option<String>,
    pin: Option<String>,
}

/// One kernel of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSpec {
    /// The short name used on the command line and in results: "6.1".
    pub name: String,
    /// Debian suite whose packages provide the kernel, headers and compiler.
    pub suite: String,
    /// The compiler package the suite's kernel was built with: "gcc-12".
    pub compiler: String,
    /// Debian kernel flavour: "cloud-amd64".
    pub flavour: String,
    /// An ABI to use instead of the suite's newest, e.g. "6.1.0-41".
    pub pin: Option<String>,
}

/// The whole matrix, in file order.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub file: PathBuf,
    pub kernels: Vec<KernelSpec>,
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '~'))
}

impl Matrix {
    pub fn load(file: &Path) -> Result<Self, MatrixError> {
        let text = std::fs::read_to_string(file).map_err(|source| MatrixError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(&text, file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Self, MatrixError> {
        let raw: RawMatrix = serde_norway::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            MatrixError::Syntax {
                file: file.to_path_buf(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        let invalid = |field: String, message: String| MatrixError::Invalid {
            file: file.to_path_buf(),
            field,
            message,
        };
        if raw.kernels.is_empty() {
            return Err(invalid(
                "kernels".into(),
                "the matrix lists no kernel".into(),
            ));
        }
        let default_flavour = raw.defaults.flavour.unwrap_or_else(|| "cloud-amd64".into());
        let mut kernels: Vec<KernelSpec> = Vec::new();
        for (i, k) in raw.kernels.into_iter().enumerate() {
            let flavour = k.flavour.unwrap_or_else(|| default_flavour.clone());
            for (field, value) in [
                ("name", &k.name),
                ("suite", &k.suite),
                ("compiler", &k.compiler),
                ("flavour", &flavour),
            ] {
                if !valid_token(value) {
                    return Err(invalid(
                        format!("kernels[{i}].{field}"),
                        format!("{value:?} is not a plain name (letters, digits, . - + _ ~)"),
                    ));
                }
            }
            if let Some(pin) = &k.pin {
                if !valid_token(pin) {
                    return Err(invalid(
                        format!("kernels[{i}].pin"),
                        format!("{pin:?} is not a kernel ABI such as 6.1.0-41"),
                    ));
                }
            }
            if kernels.iter().any(|o| o.name == k.name) {
                return Err(invalid(
                    format!("kernels[{i}].name"),
                    format!("{:?} appears twice", k.name),
                ));
            }
            kernels.push(KernelSpec {
                name: k.name,
                suite: k.suite,
                compiler: k.compiler,
                flavour,
                pin: k.pin,
            });
        }
        Ok(Self {
            file: file.to_path_buf(),
            kernels,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.kernels.iter().map(|k| k.name.clone()).collect()
    }

    /// The kernels named in `wanted` (all when empty), or an error naming the unknown one.
    pub fn select(&self, wanted: &[String]) -> Result<Vec<KernelSpec>, MatrixError> {
        if wanted.is_empty() {
            return Ok(self.kernels.clone());
        }
        wanted
            .iter()
            .map(|w| {
                self.kernels
                    .iter()
                    .find(|k| &k.name == w)
                    .cloned()
                    .ok_or_else(|| MatrixError::Invalid {
                        file: self.file.clone(),
                        field: "kernels".into(),
                        message: format!(
                            "no kernel named {w:?} (known: {})",
                            self.names().join(", ")
                        ),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Matrix, MatrixError> {
        Matrix::parse(text, Path::new("images/kernels.yaml"))
    }

    #[test]
    fn the_committed_matrix_parses() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/kernels.yaml");
        let m = Matrix::load(&file).unwrap();
        assert_eq!(m.names(), ["5.10", "6.1", "6.12", "7.2"]);
        assert!(m.kernels.iter().all(|k| k.flavour == "cloud-amd64"));
        assert_eq!(m.kernels[3].suite, "sid");
        assert_eq!(m.kernels[3].compiler, "gcc-16");
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let err =
            parse("kernels:\n  - name: a\n    suite: sid\n    compiler: gcc-16\n    sute: x\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("images/kernels.yaml:5:"), "{err}");
        assert!(err.contains("sute"), "{err}");
    }

    #[test]
    fn missing_field_and_wrong_type_are_errors() {
        let err = parse("kernels:\n  - name: a\n    suite: sid\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("compiler"), "{err}");
        let err = parse("kernels: 3\n").unwrap_err().to_string();
        assert!(err.starts_with("images/kernels.yaml:1:"), "{err}");
    }

    #[test]
    fn duplicates_and_bad_names_are_refused() {
        let dup = "kernels:\n  - {name: a, suite: sid, compiler: gcc-16}\n  - {name: a, suite: sid, compiler: gcc-16}\n";
        let err = parse(dup).unwrap_err().to_string();
        assert!(
            err.contains("kernels[1].name") && err.contains("twice"),
            "{err}"
        );
        let bad = "kernels:\n  - {name: 'a b', suite: sid, compiler: gcc-16}\n";
        assert!(parse(bad)
            .unwrap_err()
            .to_string()
            .contains("kernels[0].name"));
        let pin = "kernels:\n  - {name: a, suite: sid, compiler: gcc-16, pin: '$(x)'}\n";
        assert!(parse(pin)
            .unwrap_err()
            .to_string()
            .contains("kernels[0].pin"));
    }

    #[test]
    fn selection_by_name() {
        let m = parse("kernels:\n  - {name: a, suite: s, compiler: c}\n  - {name: b, suite: t, compiler: c, flavour: amd64}\n").unwrap();
        assert_eq!(m.select(&[]).unwrap().len(), 2);
        let b = m.select(&["b".into()]).unwrap();
        assert_eq!(b[0].flavour, "amd64");
        let err = m.select(&["z".into()]).unwrap_err().to_string();
        assert!(err.contains("\"z\"") && err.contains("a, b"), "{err}");
    }
}

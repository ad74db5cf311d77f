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
    suite: Option<String>,
    compiler: Option<String>,
    flavour: Option<String>,
    pin: Option<String>,
    source: Option<String>,
    #[serde(default)]
    config: Vec<String>,
    tree: Option<PathBuf>,
    slowdown: Option<f64>,
    benchmark: Option<bool>,
    #[serde(default)]
    cmdline: Vec<String>,
}

/// Where a kernel of the matrix comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The suite's binary packages (image, modules) and headers.
    Packages,
    /// Built by the harness from the suite's `linux-source-X` package (`package`) with a config
    /// made of the tree's x86_64_defconfig and `fragments` (paths of `images/kconfig/*.config`).
    Source {
        package: String,
        fragments: Vec<PathBuf>,
    },
    /// A tree the developer built: its bzImage, modules and kbuild tree, used as they are.
    Tree { path: PathBuf },
}

/// One kernel of the matrix.
#[derive(Debug, Clone, PartialEq)]
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
    pub origin: Origin,
    /// How much slower than a production kernel this one runs the same work (a debug kernel
    /// with KASAN and lockdep: several times); every guest timeout is multiplied by it.
    pub slowdown: f64,
    /// Whether `cargo xtask bench` measures it when no `--kernel` is given (a debug kernel's
    /// numbers say nothing about the module's overhead).
    pub benchmark: bool,
    /// Boot options this kernel always gets (after the harness's own, before `--cmdline`):
    /// e.g. `no5lvl` for a kernel whose early boot races with LA57 detection under TCG.
    pub cmdline: Vec<String>,
}

impl KernelSpec {
    /// A kernel built by the developer in `path`, named `name`.
    pub fn tree(name: &str, path: &Path) -> Self {
        Self {
            name: name.to_string(),
            suite: String::new(),
            compiler: String::new(),
            flavour: String::new(),
            pin: None,
            origin: Origin::Tree {
                path: path.to_path_buf(),
            },
            slowdown: 1.0,
            benchmark: true,
            cmdline: Vec::new(),
        }
    }
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

/// One kernel boot option: printable, no whitespace or quotes (the command line is one string).
fn valid_boot_option(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\'')
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
        let kconfig_dir = file
            .parent()
            .map(|d| d.join("kconfig"))
            .unwrap_or_else(|| PathBuf::from("kconfig"));
        for (i, k) in raw.kernels.into_iter().enumerate() {
            let field = |f: &str| format!("kernels[{i}].{f}");
            if !valid_token(&k.name) {
                return Err(invalid(
                    field("name"),
                    format!(
                        "{:?} is not a plain name (letters, digits, . - + _ ~)",
                        k.name
                    ),
                ));
            }
            if kernels.iter().any(|o| o.name == k.name) {
                return Err(invalid(
                    field("name"),
                    format!("{:?} appears twice", k.name),
                ));
            }
            let slowdown = k.slowdown.unwrap_or(1.0);
            if !(1.0..=50.0).contains(&slowdown) {
                return Err(invalid(
                    field("slowdown"),
                    format!("{slowdown} is not a factor between 1 and 50"),
                ));
            }
            for (j, option) in k.cmdline.iter().enumerate() {
                if !valid_boot_option(option) {
                    return Err(invalid(
                        format!("kernels[{i}].cmdline[{j}]"),
                        format!(
                            "{option:?} is not one boot option such as no5lvl or \
                             kfence.sample_interval=10 (no spaces, quotes or control characters)"
                        ),
                    ));
                }
            }
            if let Some(path) = k.tree {
                for (f, set) in [
                    ("suite", k.suite.is_some()),
                    ("compiler", k.compiler.is_some()),
                    ("source", k.source.is_some()),
                    ("pin", k.pin.is_some()),
                    ("config", !k.config.is_empty()),
                ] {
                    if set {
                        return Err(invalid(
                            field(f),
                            "a `tree:` kernel is used as built; it takes no suite, compiler, \
                             source, pin or config"
                                .into(),
                        ));
                    }
                }
                let mut spec = KernelSpec::tree(&k.name, &path);
                spec.slowdown = slowdown;
                spec.benchmark = k.benchmark.unwrap_or(true);
                spec.cmdline = k.cmdline;
                kernels.push(spec);
                continue;
            }
            let flavour = k.flavour.unwrap_or_else(|| default_flavour.clone());
            let required = |f: &str, v: Option<String>| {
                v.ok_or_else(|| {
                    invalid(
                        field(f),
                        format!("missing (every kernel but a `tree:` one names its {f})"),
                    )
                })
            };
            let suite = required("suite", k.suite)?;
            let compiler = required("compiler", k.compiler)?;
            for (f, value) in [
                ("suite", &suite),
                ("compiler", &compiler),
                ("flavour", &flavour),
            ] {
                if !valid_token(value) {
                    return Err(invalid(
                        field(f),
                        format!("{value:?} is not a plain name (letters, digits, . - + _ ~)"),
                    ));
                }
            }
            if let Some(pin) = &k.pin {
                if !valid_token(pin) {
                    return Err(invalid(
                        field("pin"),
                        format!("{pin:?} is not a kernel ABI such as 6.1.0-41"),
                    ));
                }
            }
            let origin =
                match k.source {
                    None if !k.config.is_empty() => return Err(invalid(
                        field("config"),
                        "config fragments need `source:` (a packaged kernel has its own config)"
                            .into(),
                    )),
                    None => Origin::Packages,
                    Some(package) => {
                        if !valid_token(&package) || !package.starts_with("linux-source-") {
                            return Err(invalid(
                                field("source"),
                                format!(
                                    "{package:?} is not a source package such as linux-source-6.12"
                                ),
                            ));
                        }
                        if k.pin.is_some() {
                            return Err(invalid(
                                field("pin"),
                                "a kernel built from source has no ABI to pin".into(),
                            ));
                        }
                        let mut fragments = Vec::new();
                        for (j, name) in k.config.iter().enumerate() {
                            if !valid_token(name) {
                                return Err(invalid(
                                    format!("kernels[{i}].config[{j}]"),
                                    format!("{name:?} is not a fragment name such as debug"),
                                ));
                            }
                            let path = kconfig_dir.join(format!("{name}.config"));
                            if !path.is_file() {
                                return Err(invalid(
                                    format!("kernels[{i}].config[{j}]"),
                                    format!("no fragment {}", path.display()),
                                ));
                            }
                            fragments.push(path);
                        }
                        Origin::Source { package, fragments }
                    }
                };
            kernels.push(KernelSpec {
                name: k.name,
                suite,
                compiler,
                flavour,
                pin: k.pin,
                origin,
                slowdown,
                benchmark: k.benchmark.unwrap_or(true),
                cmdline: k.cmdline,
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
        assert_eq!(m.names(), ["5.10", "6.1", "6.12", "7.2", "6.12-debug"]);
        assert!(m.kernels.iter().all(|k| k.flavour == "cloud-amd64"));
        assert_eq!(m.kernels[3].suite, "sid");
        assert_eq!(m.kernels[3].compiler, "gcc-16");
        let debug = &m.kernels[4];
        assert!(!debug.benchmark && debug.slowdown > 1.0);
        assert_eq!(debug.cmdline, ["no5lvl"]);
        assert!(m.kernels[..4].iter().all(|k| k.cmdline.is_empty()));
        match &debug.origin {
            Origin::Source { package, fragments } => {
                assert_eq!(package, "linux-source-6.12");
                let names: Vec<_> = fragments.iter().filter_map(|f| f.file_name()).collect();
                assert_eq!(names, ["base.config", "debug.config"]);
            }
            o => panic!("6.12-debug is not built from source: {o:?}"),
        }
    }

    #[test]
    fn source_and_tree_entries_are_checked() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/kernels.yaml");
        let p = |t: &str| Matrix::parse(t, &file);
        let err = p("kernels:\n  - {name: a, suite: s, compiler: c, config: [base]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kernels[0].config") && err.contains("source"),
            "{err}"
        );
        let err = p("kernels:\n  - {name: a, suite: s, compiler: c, source: linux-source-6.12, config: [nosuch]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kernels[0].config[0]") && err.contains("nosuch.config"),
            "{err}"
        );
        let err = p("kernels:\n  - {name: a, suite: s, compiler: c, source: gcc}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kernels[0].source"), "{err}");
        let err = p("kernels:\n  - {name: a, tree: /x, suite: s}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kernels[0].suite") && err.contains("tree"),
            "{err}"
        );
        let err = p("kernels:\n  - {name: a}\n").unwrap_err().to_string();
        assert!(
            err.contains("kernels[0].suite") && err.contains("missing"),
            "{err}"
        );
        let err = p("kernels:\n  - {name: a, tree: /x, slowdown: 0}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kernels[0].slowdown"), "{err}");
        let m = p("kernels:\n  - {name: mine, tree: /src/linux, slowdown: 2}\n").unwrap();
        assert_eq!(
            m.kernels[0].origin,
            Origin::Tree {
                path: "/src/linux".into()
            }
        );
        assert_eq!(m.kernels[0].slowdown, 2.0);
        let m = p("kernels:\n  - {name: mine, tree: /x, cmdline: [no5lvl, 'a=b,c']}\n").unwrap();
        assert_eq!(m.kernels[0].cmdline, ["no5lvl", "a=b,c"]);
        for bad in ["''", "'a b'", "'x\"y'"] {
            let text = format!("kernels:\n  - {{name: a, tree: /x, cmdline: [ok, {bad}]}}\n");
            let err = p(&text).unwrap_err().to_string();
            assert!(err.contains("kernels[0].cmdline[1]"), "{bad}: {err}");
        }
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
        assert!(
            err.contains("compiler") && err.contains("kernels[0]"),
            "{err}"
        );
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

//! The guest image recipe (`images/guest.yaml`): what debootstrap installs, which
//! files are copied in, and how large the ext4 image is.
//!
//! Parsing is strict (`deny_unknown_fields`) because a misspelt key silently
//! ignored would build an image without what the author asked for.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ImageError;

/// The recipe as written in YAML.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Debian suite given to debootstrap (e.g. `bookworm`).
    pub suite: String,
    /// debootstrap `--variant` (e.g. `minbase`).
    pub variant: String,
    /// Packages for `--include`.
    pub packages: Vec<String>,
    /// Files copied into the root filesystem after debootstrap.
    #[serde(default)]
    pub files: Vec<RecipeFile>,
    /// Filesystem parameters.
    pub image: ImageParams,
}

/// One file of the recipe, copied from `src` (relative to the recipe file) to
/// `dest` (absolute path inside the guest).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecipeFile {
    pub src: PathBuf,
    pub dest: String,
    /// Octal permission bits as a string (`"0755"`): YAML integers would
    /// silently read `0755` as decimal 755 under YAML 1.2.
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".to_string()
}

/// Parameters of the final ext4 image.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageParams {
    /// ext4 label (`mkfs.ext4 -L`), at most 16 bytes.
    pub label: String,
    /// Free space above the content, in MiB.
    pub margin_mib: u64,
}

/// A recipe file whose source has been read, ready to hash and install.
#[derive(Debug, Clone)]
pub(crate) struct LoadedFile {
    pub dest: String,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// A parsed and validated recipe with the raw bytes it was read from.
#[derive(Debug, Clone)]
pub(crate) struct LoadedRecipe {
    pub recipe: Recipe,
    pub raw: Vec<u8>,
    pub files: Vec<LoadedFile>,
}

fn field_error(path: &Path, field: &str, message: impl std::fmt::Display) -> ImageError {
    ImageError::Recipe {
        file: path.to_path_buf(),
        message: format!("{field}: {message}"),
    }
}

/// Debian package names: lower-case alphanumerics and `+-.`, starting with an
/// alphanumeric (Debian policy 5.6.1). Checked because they are joined with
/// commas into one debootstrap argument.
fn is_package_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Recipe {
    /// Parses recipe text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ImageError> {
        let recipe: Recipe = serde_norway::from_str(text).map_err(|e| ImageError::Recipe {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        recipe.validate(file)?;
        Ok(recipe)
    }

    fn validate(&self, file: &Path) -> Result<(), ImageError> {
        if !is_plain_word(&self.suite) {
            return Err(field_error(
                file,
                "suite",
                "must be a Debian suite name like `bookworm`",
            ));
        }
        if !is_plain_word(&self.variant) {
            return Err(field_error(
                file,
                "variant",
                "must be a debootstrap variant like `minbase`",
            ));
        }
        if self.packages.is_empty() {
            return Err(field_error(file, "packages", "must not be empty"));
        }
        for (i, name) in self.packages.iter().enumerate() {
            if !is_package_name(name) {
                return Err(field_error(
                    file,
                    &format!("packages[{i}]"),
                    format!("`{name}` is not a Debian package name"),
                ));
            }
        }
        for (i, f) in self.files.iter().enumerate() {
            let dest_ok = f.dest.starts_with('/')
                && f.dest.len() > 1
                && !f.dest.ends_with('/')
                && f.dest.split('/').all(|part| part != ".." && part != ".");
            if !dest_ok {
                return Err(field_error(
                    file,
                    &format!("files[{i}].dest"),
                    format!(
                        "`{}` must be an absolute file path without `.` or `..`",
                        f.dest
                    ),
                ));
            }
            if f.src.as_os_str().is_empty() || f.src.is_absolute() {
                return Err(field_error(
                    file,
                    &format!("files[{i}].src"),
                    "must be a path relative to the recipe file",
                ));
            }
            parse_mode(&f.mode).ok_or_else(|| {
                field_error(
                    file,
                    &format!("files[{i}].mode"),
                    format!("`{}` is not an octal mode like \"0755\"", f.mode),
                )
            })?;
        }
        let label = &self.image.label;
        if label.is_empty() || label.len() > 16 || !label.chars().all(|c| c.is_ascii_graphic()) {
            return Err(field_error(
                file,
                "image.label",
                "must be 1 to 16 printable ASCII bytes",
            ));
        }
        if self.image.margin_mib > 1024 * 1024 {
            return Err(field_error(
                file,
                "image.margin_mib",
                "more than 1 TiB is surely a typo",
            ));
        }
        Ok(())
    }
}

fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 {
        return None;
    }
    u32::from_str_radix(text, 8).ok()
}

impl LoadedRecipe {
    /// Reads and validates the recipe and every file it lists.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let raw = std::fs::read(path).map_err(|e| ImageError::Io {
            context: format!("reading recipe {}", path.display()),
            source: e,
        })?;
        let text = String::from_utf8(raw.clone())
            .map_err(|_| field_error(path, "(file)", "is not UTF-8"))?;
        let recipe = Recipe::parse(&text, path)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let mut files = Vec::with_capacity(recipe.files.len());
        for (i, f) in recipe.files.iter().enumerate() {
            let src = base.join(&f.src);
            let content = std::fs::read(&src).map_err(|e| {
                field_error(
                    path,
                    &format!("files[{i}].src"),
                    format!("cannot read {}: {e}", src.display()),
                )
            })?;
            files.push(LoadedFile {
                dest: f.dest.clone(),
                // Validated above; 0o644 is never reached.
                mode: parse_mode(&f.mode).unwrap_or(0o644),
                content,
            });
        }
        Ok(Self { recipe, raw, files })
    }
}

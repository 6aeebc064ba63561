//! The key values a condition allows for one binding (`key = v`, `key IN (...)`,
//! `key = ANY(...)`, ORs of those), read as the key column's type.

use sqlparser::ast::{BinaryOperator, Expr};

use super::Walker;
use crate::router::keys;
use crate::router::plan::{KeySource, Refusal};

impl Walker<'_> {
    /// The key values an expression allows for one binding: `key = v`, `key IN (...)`,
    /// `key = ANY(...)`, and ORs of those on the same binding.
    pub(super) fn restriction(&self, e: &Expr) -> Result<Option<(usize, Vec<KeySource>)>, Refusal> {
        match e {
            Expr::Nested(inner) => self.restriction(inner),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => Ok(match self.restriction(left)? {
                Some(r) => Some(r),
                None => self.restriction(right)?,
            }),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => Ok(match (self.restriction(left)?, self.restriction(right)?) {
                (Some((a, mut ka)), Some((b, kb))) if a == b => {
                    for k in kb {
                        if !ka.contains(&k) {
                            ka.push(k);
                        }
                    }
                    Some((a, ka))
                }
                _ => None,
            }),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let (b, other) = match (self.key_ref(left), self.key_ref(right)) {
                    (Some(b), None) => (b, right),
                    (None, Some(b)) => (b, left),
                    _ => return Ok(None),
                };
                Ok(self.value(b, other)?.map(|k| (b, vec![k])))
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                let Some(b) = self.key_ref(expr) else {
                    return Ok(None);
                };
                let mut keys = Vec::with_capacity(list.len());
                for item in list {
                    match self.value(b, item)? {
                        Some(k) if !keys.contains(&k) => keys.push(k),
                        Some(_) => {}
                        None => return Ok(None),
                    }
                }
                Ok(Some((b, keys)))
            }
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => {
                let Some(b) = self.key_ref(left) else {
                    return Ok(None);
                };
                let Some(ty) = self.key_type(b) else {
                    return Ok(None);
                };
                match keys::array(right, ty) {
                    Ok(Some(keys)) => Ok(Some((b, keys))),
                    Ok(None) => Ok(None),
                    Err(err) => Err(self.invalid(b, err)),
                }
            }
            _ => Ok(None),
        }
    }

    fn value(&self, b: usize, e: &Expr) -> Result<Option<KeySource>, Refusal> {
        let Some(ty) = self.key_type(b) else {
            return Ok(None);
        };
        keys::value(e, ty).map_err(|err| self.invalid(b, err))
    }

    pub(crate) fn invalid(&self, b: usize, err: String) -> Refusal {
        let bd = &self.facts.bindings[b];
        keys::invalid(&bd.name, self.key_column(b).unwrap_or(""), err)
    }
}

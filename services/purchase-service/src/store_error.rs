//! What can fail under every use case alike: MySQL, Redis, or a reply Redis never gives.
//! [`PurchaseError`](crate::purchases::PurchaseError) and
//! [`OrderError`](crate::order::OrderError) carry it as one variant, so it becomes a
//! status in one place.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] db::Error),
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
    /// Redis answered with something it never answers: a defect.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl StoreError {
    pub fn unexpected(error: impl Into<anyhow::Error>) -> Self {
        StoreError::Unexpected(error.into())
    }
}

/// `?` on a store's error in a function returning `$error`, which has a
/// `Store(StoreError)` variant.
macro_rules! store_error_converts_to {
    ($error:ty) => {
        impl From<db::Error> for $error {
            fn from(error: db::Error) -> Self {
                Self::Store(error.into())
            }
        }
        impl From<inventory::Error> for $error {
            fn from(error: inventory::Error) -> Self {
                Self::Store(error.into())
            }
        }
        impl From<diesel::result::Error> for $error {
            fn from(error: diesel::result::Error) -> Self {
                Self::Store(db::Error::from(error).into())
            }
        }
    };
}
pub(crate) use store_error_converts_to;

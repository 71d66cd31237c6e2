//! The diesel schema of the one MySQL database the services share. Each table's owner
//! is noted; queries live next to their models in the owning service.

diesel::table! {
    /// Owned by auth-service.
    users (id) {
        id -> Unsigned<Bigint>,
        name -> Varchar,
        email -> Varchar,
        password_hash -> Varchar,
        role -> Varchar,
        created_at -> Datetime,
        updated_at -> Datetime,
    }
}

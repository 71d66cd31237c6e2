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

diesel::table! {
    /// Owned by catalog-service; `stock` is also decremented by stock-writer.
    items (id) {
        id -> Unsigned<Bigint>,
        name -> Varchar,
        description -> Nullable<Text>,
        price -> Unsigned<Bigint>,
        stock -> Unsigned<Integer>,
        max_per_user -> Nullable<Unsigned<Integer>>,
        created_at -> Datetime,
        updated_at -> Datetime,
        deleted_at -> Nullable<Datetime>,
    }
}

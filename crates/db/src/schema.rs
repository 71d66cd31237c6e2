//! The diesel schema of the one MySQL database the services share. Each table's owner
//! is noted; queries live next to their models in the owning service, except those on
//! `orders`, which several services share: all of them are in [`crate::orders`].

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
        sale_starts_at -> Nullable<Datetime>,
        sale_ends_at -> Nullable<Datetime>,
        payment_window_secs -> Nullable<Unsigned<Integer>>,
        stock_owed -> Unsigned<Integer>,
        waiting_room -> Bool,
        max_admitted -> Nullable<Unsigned<Integer>>,
        pass_secs -> Unsigned<Integer>,
    }
}

diesel::table! {
    /// Written by stock-writer (idempotently, keyed by the order id minted at purchase);
    /// read by purchase-service.
    orders (id) {
        id -> Varchar,
        user_id -> Unsigned<Bigint>,
        item_id -> Unsigned<Bigint>,
        quantity -> Unsigned<Integer>,
        purchased_at -> Datetime,
        persisted_at -> Datetime,
        status -> Varchar,
        pay_by -> Nullable<Datetime>,
        paid_at -> Nullable<Datetime>,
        released_at -> Nullable<Datetime>,
        payment_id -> Nullable<Varchar>,
        amount -> Nullable<Unsigned<Bigint>>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, items, orders);

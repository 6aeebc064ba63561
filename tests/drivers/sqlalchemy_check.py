"""SQLAlchemy 2 (ORM, over psycopg 3) through shardgate, as its users drive it: the dialect's first
connect (version, settings and catalog queries in one transaction), sessions that open a transaction
before every first statement, get/add/update/delete by primary key, and reads over both shards at
the start of a transaction. Connects with the PG* environment variables; the users table holds ids
1-40 afterwards."""

import os

from sqlalchemy import BigInteger, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String)


def main():
    env = os.environ
    url = f"postgresql+psycopg://{env['PGUSER']}:{env['PGPASSWORD']}@{env['PGHOST']}:{env['PGPORT']}/{env['PGDATABASE']}"
    # Each engine's first connect runs the dialect's queries in one transaction, which a statement any
    # shard can answer opens on the next shard in turn: four of them meet both shards.
    for _ in range(4):
        with create_engine(url).connect() as conn:
            assert conn.scalar(select(func.count()).select_from(User)) >= 0
    engine = create_engine(url, pool_size=4)
    # One session (one transaction) per key: a transaction stays on its shard.
    for i in range(1, 41):
        with Session(engine) as s:
            s.add(User(id=i, email=f"u{i}@x"))
            s.commit()
    for i in range(1, 41):
        with Session(engine) as s:
            user = s.get(User, i)
            assert user.email == f"u{i}@x", (i, user.email)
            user.email = f"changed{i}"
            s.commit()
    with Session(engine) as s:
        # Reads over both shards, each the transaction's first statements.
        assert s.scalar(select(func.count()).select_from(User)) == 40
        top = s.scalars(select(User.id).where(User.email.like("changed%")).order_by(User.id.desc()).limit(3)).all()
        assert top == [40, 39, 38], top
        s.rollback()
    with Session(engine) as s:
        s.delete(s.get(User, 40))
        s.rollback()
    with Session(engine) as s:
        assert s.get(User, 40) is not None, "rolled back"
    print("sqlalchemy ok")


main()

// pgjdbc through shardgate, as its users drive it: server-side prepared statements (past
// prepareThreshold), batches (one Sync), transactions with autocommit off (BEGIN sent with the first
// statement, COMMIT and ROLLBACK as named statements), ids from a sequence as Hibernate draws them,
// a fetch size (a portal read in parts), errors
// by SQLSTATE, catalog metadata, merged reads over both shards, and threads that each must get their
// own results. Connects with the PG* environment variables; the users table holds ids 1-40 afterwards.
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class JdbcCheck {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static Connection connect() throws SQLException {
        Map<String, String> env = System.getenv();
        String url = "jdbc:postgresql://" + env.get("PGHOST") + ":" + env.get("PGPORT") + "/" + env.get("PGDATABASE");
        Properties p = new Properties();
        p.setProperty("user", env.get("PGUSER"));
        p.setProperty("password", env.get("PGPASSWORD"));
        p.setProperty("sslmode", "disable");
        return DriverManager.getConnection(url, p);
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = connect()) {
            try (PreparedStatement ins = c.prepareStatement("INSERT INTO users (id, email) VALUES (?, ?)")) {
                for (int i = 1; i <= 40; i++) {
                    ins.setLong(1, i);
                    ins.setString(2, "u" + i + "@x");
                    check(ins.executeUpdate() == 1, "insert " + i);
                }
            }
            try (PreparedStatement q = c.prepareStatement("SELECT email FROM users WHERE id = ?")) {
                for (int round = 0; round < 3; round++) {
                    for (int i = 1; i <= 40; i++) {
                        q.setLong(1, i);
                        try (ResultSet rs = q.executeQuery()) {
                            check(rs.next() && rs.getString(1).equals("u" + i + "@x"), "select " + i);
                        }
                    }
                }
            }
            try (PreparedStatement b = c.prepareStatement("INSERT INTO orders (id, user_id, amount) VALUES (?, ?, ?)")) {
                for (int j = 0; j < 50; j++) {
                    b.setLong(1, j);
                    b.setLong(2, 1);
                    b.setBigDecimal(3, new BigDecimal(j));
                    b.addBatch();
                }
                check(b.executeBatch().length == 50, "batch");
            }
            c.setAutoCommit(false);
            for (int i = 1; i <= 40; i++) {
                try (PreparedStatement u = c.prepareStatement("UPDATE users SET email = ? WHERE id = ?")) {
                    u.setString(1, "t" + i);
                    u.setLong(2, i);
                    check(u.executeUpdate() == 1, "update " + i);
                }
                if (i % 2 == 0) c.commit(); else c.rollback();
            }
            try (PreparedStatement q = c.prepareStatement("SELECT id FROM orders WHERE user_id = ? ORDER BY id")) {
                q.setFetchSize(7);
                q.setLong(1, 1);
                int n = 0;
                try (ResultSet rs = q.executeQuery()) {
                    while (rs.next()) check(rs.getLong(1) == n++, "fetch " + n);
                }
                check(n == 50, "fetched " + n);
            }
            c.commit();
            c.setAutoCommit(true);
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT email FROM users WHERE id IN (1, 2) ORDER BY id")) {
                check(rs.next() && rs.getString(1).equals("u1@x"), "rolled back");
                check(rs.next() && rs.getString(1).equals("t2"), "committed");
            }
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*), sum(amount) FROM orders")) {
                check(rs.next() && rs.getLong(1) == 50 && rs.getBigDecimal(2).intValueExact() == 1225, "merged aggregates");
            }
            // Hibernate's sequence generator: nextval inside the transaction, then a write keyed by
            // the id drawn, on either shard; every id from the one sequence.
            try (Statement s = c.createStatement()) {
                s.execute("CREATE SEQUENCE hibernate_sequence START 500");
            }
            c.setAutoCommit(false);
            for (int i = 0; i < 6; i++) {
                long id;
                try (PreparedStatement n = c.prepareStatement("select nextval('hibernate_sequence')");
                     ResultSet rs = n.executeQuery()) {
                    check(rs.next(), "nextval");
                    id = rs.getLong(1);
                }
                check(id == 500 + i, "drawn " + id);
                try (PreparedStatement o = c.prepareStatement("INSERT INTO orders (id, user_id, amount) VALUES (?, ?, 0)")) {
                    o.setLong(1, id);
                    o.setLong(2, id);
                    check(o.executeUpdate() == 1, "order " + id);
                }
                c.commit();
            }
            c.setAutoCommit(true);
            try (PreparedStatement q = c.prepareStatement("SELECT id FROM users WHERE email LIKE ? ORDER BY id DESC LIMIT 2")) {
                for (int round = 0; round < 7; round++) {
                    q.setString(1, "u%");
                    try (ResultSet rs = q.executeQuery()) {
                        check(rs.next() && rs.getLong(1) == 39, "top id");
                    }
                }
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT 1 / 0");
                check(false, "division by zero");
            } catch (SQLException e) {
                check("22012".equals(e.getSQLState()), e.getSQLState());
            }
            try (ResultSet rs = c.getMetaData().getTables(null, "public", "users", null)) {
                check(rs.next(), "metadata");
            }
        }
        List<String> errs = Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 16; t++) {
            final int me = t;
            threads.add(new Thread(() -> {
                try (Connection c = connect();
                     PreparedStatement q = c.prepareStatement("SELECT id, ?::int FROM users WHERE id = ?")) {
                    for (int k = 0; k < 100; k++) {
                        int i = 1 + (me * 7 + k) % 40;
                        q.setInt(1, me);
                        q.setLong(2, i);
                        try (ResultSet rs = q.executeQuery()) {
                            if (!rs.next() || rs.getLong(1) != i || rs.getInt(2) != me) errs.add(me + "/" + k);
                        }
                    }
                } catch (Exception e) {
                    errs.add(e.toString());
                }
            }));
        }
        for (Thread t : threads) t.start();
        for (Thread t : threads) t.join();
        check(errs.isEmpty(), errs.toString());
        System.out.println("pgjdbc ok");
    }
}

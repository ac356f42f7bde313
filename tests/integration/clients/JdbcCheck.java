// What DBeaver, Metabase and Tableau do through pgjdbc on connect, printed one fact a line.
import java.sql.*;

public class JdbcCheck {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/tdw";
        try (Connection c = DriverManager.getConnection(url, "analyst", "")) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = md.getTables(null, "marts", "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE")
                        + " " + rs.getString("REMARKS"));
            }
            try (ResultSet rs = md.getColumns(null, "marts", "fct_msd", "%")) {
                while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                        + " " + rs.getInt("DATA_TYPE") + " " + rs.getString("REMARKS"));
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "marts", "keyed")) {
                while (rs.next()) System.out.println("pk " + rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ"));
            }
            int types = 0;
            try (ResultSet rs = md.getTypeInfo()) {
                while (rs.next()) types++;
            }
            System.out.println("typeinfo " + types);
            try (PreparedStatement ps = c.prepareStatement("select k from marts.keyed where v = ?")) {
                for (String v : new String[] {"5", "2026-12-05"}) {
                    ps.setString(1, v);
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) System.out.println("prepared " + v + " " + rs.getInt(1));
                    }
                }
            }
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(700);
                long n = 0, sum = 0;
                try (ResultSet rs = st.executeQuery("select step from marts.fct_msd order by step")) {
                    while (rs.next()) { n++; sum += rs.getLong(1); }
                }
                System.out.println("fetched " + n + " " + sum);
            }
            c.commit();
        }
    }
}

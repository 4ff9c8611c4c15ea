// The Spring side of a mixed deployment, as the `@Idempotent` aspect does it with a Spring
// Boot ObjectMapper (FAIL_ON_UNKNOWN_PROPERTIES off): the request's fingerprint is
// SHA-256(writeValueAsString(dto)), and a record is read as a CachedResponse.
//
//   java SpringSide hash                      one JSON body a line on stdin -> "<hash>\t<json>" (or "error\t<why>")
//   java SpringSide get <port> <key>          the record under <key> as the aspect reads it, as JSON
//   java SpringSide put <port> <key> <ttl-ms> one JSON body on stdin: a completed record for it
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

public class SpringSide {
    /** The DTO of POST /charges, as a Spring service declares it. */
    public static class Charge {
        public long amount;
        public String currency;
    }

    /** What the aspect stores and reads. */
    public static class CachedResponse {
        public Integer statusCode;
        public String body;
        public String bodyHash;
    }

    static final ObjectMapper MAPPER = new ObjectMapper()
        .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    static String sha256(String text) throws Exception {
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
        StringBuilder hex = new StringBuilder();
        for (byte b : digest) hex.append(String.format("%02x", b));
        return hex.toString();
    }

    /** The aspect's fingerprint of a request body. */
    static String[] fingerprint(String body) throws Exception {
        String json = MAPPER.writeValueAsString(MAPPER.readValue(body, Charge.class));
        return new String[] {sha256(json), json};
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        switch (args[0]) {
            case "hash": {
                String line;
                while ((line = in.readLine()) != null) {
                    try {
                        String[] fp = fingerprint(line);
                        System.out.println(fp[0] + "\t" + fp[1]);
                    } catch (Exception e) {
                        System.out.println("error\t" + e.getClass().getSimpleName());
                    }
                }
                break;
            }
            case "get": {
                byte[] value = redis(Integer.parseInt(args[1]), "GET", args[2]);
                CachedResponse cached = MAPPER.readValue(value, CachedResponse.class);
                System.out.println(MAPPER.writeValueAsString(cached));
                break;
            }
            case "put": {
                CachedResponse cached = new CachedResponse();
                cached.statusCode = 201;
                cached.body = "{\"id\":\"from-spring\"}";
                cached.bodyHash = fingerprint(in.readLine())[0];
                redis(Integer.parseInt(args[1]), "SET", args[2], MAPPER.writeValueAsString(cached), "PX", args[3]);
                break;
            }
            default:
                throw new IllegalArgumentException(args[0]);
        }
    }

    /** One command to Redis on 127.0.0.1:<port>, in RESP; the bulk reply (or null). */
    static byte[] redis(int port, String... command) throws Exception {
        try (Socket socket = new Socket("127.0.0.1", port)) {
            OutputStream out = socket.getOutputStream();
            StringBuilder request = new StringBuilder("*" + command.length + "\r\n");
            for (String part : command) {
                byte[] bytes = part.getBytes(StandardCharsets.UTF_8);
                request.append("$").append(bytes.length).append("\r\n").append(part).append("\r\n");
            }
            out.write(request.toString().getBytes(StandardCharsets.UTF_8));
            out.flush();
            InputStream reply = socket.getInputStream();
            String header = readLine(reply);
            if (header.startsWith("+")) return header.substring(1).getBytes(StandardCharsets.UTF_8);
            if (!header.startsWith("$")) throw new IllegalStateException("redis: " + header);
            int length = Integer.parseInt(header.substring(1));
            if (length < 0) return null;
            byte[] value = reply.readNBytes(length);
            reply.readNBytes(2);
            return value;
        }
    }

    static String readLine(InputStream in) throws Exception {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != '\r') line.write(b);
        in.read();
        return line.toString(StandardCharsets.UTF_8);
    }
}

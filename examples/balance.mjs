// A client written exactly as the seed documents' Node.js examples, with no dependencies:
//   ESIMGATE_URL=http://127.0.0.1:8000 ACCESS_CODE=... SECRET_KEY=... node examples/balance.mjs
import crypto from 'node:crypto';

const baseUrl = process.env.ESIMGATE_URL ?? 'http://127.0.0.1:8000';
const accessCode = process.env.ACCESS_CODE;
const secretKey = process.env.SECRET_KEY;

const timestamp = Date.now().toString();
const requestId = crypto.randomUUID(); // a UUID v4, like uuidv4()
const signData = timestamp + requestId + accessCode; // + body, which is empty for GET
const signature = crypto.createHmac('sha256', secretKey).update(signData).digest('hex').toUpperCase();

const response = await fetch(`${baseUrl}/api/v1/business/balance`, {
  headers: {
    'RT-AccessCode': accessCode,
    'RT-RequestID': requestId,
    'RT-Timestamp': timestamp,
    'RT-Signature': signature,
  },
});
const data = await response.json();
console.log(JSON.stringify({ status: response.status, body: data }));
process.exit(response.ok ? 0 : 1);
